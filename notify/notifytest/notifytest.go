// Package notifytest is an SMTP server in the test process, for the tests
// of billing notify: it takes mail, refuses the recipients it is told to
// with 550, and can be stopped and started again on its address.
package notifytest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"net/textproto"
	"strings"
	"sync"
	"testing"
	"time"
)

// Mail is one message the server accepted.
type Mail struct {
	From, To string
	// Data is the message (headers and body), lines ending in \n.
	Data string
	// TLS: it came after STARTTLS.
	TLS bool
}

// Server is a small SMTP server: it accepts any sender and refuses the
// recipients it was given with 550.
type Server struct {
	t      testing.TB
	addr   string
	refuse map[string]bool
	tls    *tls.Config // offers STARTTLS when set
	roots  *x509.CertPool
	// Got receives each accepted message.
	Got chan Mail

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]bool
}

// Start starts a server on a free loopback port, refusing refuse, stopped
// when t ends.
func Start(t testing.TB, refuse ...string) *Server {
	t.Helper()
	s := &Server{t: t, addr: "127.0.0.1:0", refuse: map[string]bool{}, Got: make(chan Mail, 1000), conns: map[net.Conn]bool{}}
	for _, r := range refuse {
		s.refuse[r] = true
	}
	s.Start()
	t.Cleanup(s.Stop)
	return s
}

// StartTLS is Start with STARTTLS offered, under a certificate for
// 127.0.0.1 that ClientTLS trusts.
func StartTLS(t testing.TB, refuse ...string) *Server {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "notifytest"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{t: t, addr: "127.0.0.1:0", refuse: map[string]bool{}, Got: make(chan Mail, 1000), conns: map[net.Conn]bool{},
		tls:   &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, MinVersion: tls.VersionTLS12},
		roots: x509.NewCertPool()}
	s.roots.AddCert(cert)
	for _, r := range refuse {
		s.refuse[r] = true
	}
	s.Start()
	t.Cleanup(s.Stop)
	return s
}

// ClientTLS is a client configuration that trusts a StartTLS server.
func (s *Server) ClientTLS() *tls.Config {
	return &tls.Config{RootCAs: s.roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
}

// Addr is the server's host:port.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Next is the next message accepted, failing t after a minute without one.
func (s *Server) Next(t testing.TB) Mail {
	t.Helper()
	select {
	case m := <-s.Got:
		return m
	case <-time.After(time.Minute):
		t.Fatal("notifytest: no mail within a minute")
		return Mail{}
	}
}

// Start listens on the server's address again (the same after a Stop).
func (s *Server) Start() {
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		s.t.Fatalf("mail server: %v", err)
	}
	s.mu.Lock()
	s.ln, s.addr = ln, ln.Addr().String()
	s.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns[c] = true
			s.mu.Unlock()
			go s.serve(c)
		}
	}()
}

// Stop closes the listener and every connection: the server is down.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		_ = s.ln.Close()
		s.ln = nil
	}
	for c := range s.conns {
		_ = c.Close()
		delete(s.conns, c)
	}
}

func (s *Server) serve(c net.Conn) {
	defer c.Close()
	tp := textproto.NewConn(c)
	reply := func(format string, args ...any) bool { return tp.PrintfLine(format, args...) == nil }
	if !reply("220 test ESMTP") {
		return
	}
	var m Mail
	for {
		line, err := tp.ReadLine()
		if err != nil {
			return
		}
		verb, arg, _ := strings.Cut(line, " ")
		switch strings.ToUpper(verb) {
		case "EHLO", "HELO":
			if s.tls != nil && !m.TLS {
				reply("250-test")
				reply("250 STARTTLS")
				continue
			}
			reply("250 test")
		case "STARTTLS":
			reply("220 2.0.0 ready")
			tc := tls.Server(c, s.tls)
			if tc.Handshake() != nil {
				return
			}
			tp, m = textproto.NewConn(tc), Mail{TLS: true}
		case "MAIL":
			m = Mail{From: angle(arg), TLS: m.TLS}
			reply("250 2.1.0 ok")
		case "RCPT":
			to := angle(arg)
			if s.refuse[to] {
				reply("550 5.1.1 <%s>: no such mailbox", to)
				continue
			}
			m.To = to
			reply("250 2.1.5 ok")
		case "DATA":
			reply("354 go ahead")
			b, err := io.ReadAll(tp.DotReader())
			if err != nil {
				return
			}
			m.Data = string(b)
			s.Got <- m
			reply("250 2.0.0 queued")
		case "RSET", "NOOP":
			reply("250 ok")
		case "QUIT":
			reply("221 bye")
			return
		default:
			reply("502 5.5.2 unknown command")
		}
	}
}

// angle is the address in "FROM:<a@b> ..." or "TO:<a@b>".
func angle(arg string) string {
	_, a, _ := strings.Cut(arg, "<")
	a, _, _ = strings.Cut(a, ">")
	return a
}
