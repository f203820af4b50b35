package notify

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"net"
	"net/mail"
	"net/smtp"
	"net/textproto"
	"strings"
	"time"
)

// RefusedError is an SMTP server's permanent refusal (a 5xx reply) of a
// recipient or of the message: retrying would get the same answer.
type RefusedError struct{ Reply string }

func (e *RefusedError) Error() string { return "notify: smtp refused: " + e.Reply }

// email is one message to send.
type email struct {
	id            string // the change id, for the Message-ID
	from, to      string
	subject, body string
	date          time.Time
}

// bytes is the message as sent: our headers, then the body, CRLF lines.
func (e email) bytes() []byte {
	sum := sha256.Sum256([]byte(e.id))
	domain := "billing.invalid"
	if i := strings.LastIndexByte(e.from, '@'); i >= 0 {
		domain = e.from[i+1:]
	}
	var b bytes.Buffer
	for _, h := range [][2]string{
		{"From", e.from}, {"To", e.to},
		{"Subject", mime.QEncoding.Encode("utf-8", e.subject)},
		{"Date", e.date.Format(time.RFC1123Z)},
		{"Message-ID", "<" + hex.EncodeToString(sum[:16]) + "@" + domain + ">"},
		{"Auto-Submitted", "auto-generated"},
		{"MIME-Version", "1.0"},
		{"Content-Type", "text/plain; charset=utf-8"},
		{"Content-Transfer-Encoding", "8bit"},
	} {
		b.WriteString(h[0] + ": " + h[1] + "\r\n")
	}
	b.WriteString("\r\n")
	b.WriteString(strings.ReplaceAll(strings.ReplaceAll(e.body, "\r\n", "\n"), "\n", "\r\n"))
	return b.Bytes()
}

// send delivers e through the SMTP server at addr (plain SMTP, STARTTLS
// when the server offers it). A 5xx reply to RCPT or to the message is a
// *RefusedError; anything else (no connection, 4xx, a 5xx to MAIL FROM:
// our own From) is worth a retry.
func send(ctx context.Context, addr string, timeout time.Duration, tlsConfig *tls.Config, e email) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("notify: SMTP_ADDR %q: %w", addr, err)
	}
	d := net.Dialer{Timeout: timeout}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("notify: smtp: %w", err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(timeout))
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		return fmt.Errorf("notify: smtp greeting: %w", err)
	}
	defer c.Close()
	if ok, _ := c.Extension("STARTTLS"); ok {
		cfg := &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
		if tlsConfig != nil {
			cfg = tlsConfig
		}
		if err := c.StartTLS(cfg); err != nil {
			return fmt.Errorf("notify: smtp starttls: %w", err)
		}
	}
	if err := c.Mail(e.from); err != nil {
		return fmt.Errorf("notify: smtp MAIL FROM %s: %w", e.from, err)
	}
	if err := c.Rcpt(e.to); err != nil {
		return refused("RCPT TO "+e.to, err)
	}
	w, err := c.Data()
	if err != nil {
		return refused("DATA", err)
	}
	if _, err := w.Write(e.bytes()); err != nil {
		return fmt.Errorf("notify: smtp message: %w", err)
	}
	if err := w.Close(); err != nil {
		return refused("message", err)
	}
	_ = c.Quit()
	return nil
}

// refused is err as a *RefusedError when the server's reply is 5xx.
func refused(step string, err error) error {
	var te *textproto.Error
	if errors.As(err, &te) && te.Code >= 500 && te.Code < 600 {
		return &RefusedError{Reply: fmt.Sprintf("%s: %d %s", step, te.Code, te.Msg)}
	}
	return fmt.Errorf("notify: smtp %s: %w", step, err)
}

// address checks one address as SMTP takes it: addr-spec only, no name.
func address(s string) (string, error) {
	a, err := mail.ParseAddress(s)
	if err != nil {
		return "", err
	}
	if a.Name != "" || strings.ContainsAny(a.Address, "\r\n<>") {
		return "", fmt.Errorf("mail: want a bare address, got %q", s)
	}
	return a.Address, nil
}
