package notify_test

import (
	"io"
	"net"
	"net/textproto"
	"strings"
	"sync"
	"testing"
)

// mail is one message the test SMTP server accepted.
type mail struct {
	from, to string
	data     string
}

// mailServer is a small SMTP server in the test process: it accepts any
// sender, refuses the recipients in refuse with 550, and can be stopped
// and started again on its address.
type mailServer struct {
	t      *testing.T
	addr   string
	refuse map[string]bool
	got    chan mail

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]bool
}

func startMailServer(t *testing.T, refuse ...string) *mailServer {
	t.Helper()
	s := &mailServer{t: t, addr: "127.0.0.1:0", refuse: map[string]bool{}, got: make(chan mail, 100), conns: map[net.Conn]bool{}}
	for _, r := range refuse {
		s.refuse[r] = true
	}
	s.start()
	t.Cleanup(s.stop)
	return s
}

// start listens on the server's address (the same after a stop).
func (s *mailServer) start() {
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

// stop closes the listener and every connection: the server is down.
func (s *mailServer) stop() {
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

func (s *mailServer) serve(c net.Conn) {
	defer c.Close()
	tp := textproto.NewConn(c)
	reply := func(format string, args ...any) bool { return tp.PrintfLine(format, args...) == nil }
	if !reply("220 test ESMTP") {
		return
	}
	var m mail
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
			m = mail{from: angle(arg)}
			reply("250 2.1.0 ok")
		case "RCPT":
			to := angle(arg)
			if s.refuse[to] {
				reply("550 5.1.1 <%s>: no such mailbox", to)
				continue
			}
			m.to = to
			reply("250 2.1.5 ok")
		case "DATA":
			reply("354 go ahead")
			b, err := io.ReadAll(tp.DotReader())
			if err != nil {
				return
			}
			m.data = string(b)
			s.got <- m
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
