// Package notifytest is an SMTP server in the test process, for the tests
// of billing notify: it takes mail, refuses the recipients it is told to
// with 550, and can be stopped and started again on its address.
package notifytest

import (
	"io"
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
}

// Server is a small SMTP server: it accepts any sender and refuses the
// recipients it was given with 550.
type Server struct {
	t      testing.TB
	addr   string
	refuse map[string]bool
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
			reply("250 test")
		case "MAIL":
			m = Mail{From: angle(arg)}
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
