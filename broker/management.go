package broker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Management is a client of RabbitMQ's management HTTP API, for what AMQP
// cannot do: list the queues that exist, read a queue's arguments, tell
// the broker's version, set policies (`billing topology`).
type Management struct {
	base   *url.URL // scheme and host; the credentials in User
	vhost  string
	client *http.Client
}

// ManagementURL is the management API of the first node of amqpURL: the
// same host and credentials, http on port 15672 (https on 15671 for
// amqps), as the plugin listens by default.
func ManagementURL(amqpURL string) (string, error) {
	urls := SplitURLs(amqpURL)
	if len(urls) == 0 {
		return "", errors.New("broker: no AMQP URL")
	}
	uri, err := ParseURL(urls[0])
	if err != nil {
		return "", err
	}
	u := url.URL{Scheme: "http", Host: net.JoinHostPort(uri.Host, "15672"), User: url.UserPassword(uri.Username, uri.Password), Path: "/"}
	if uri.Scheme == "amqps" {
		u.Scheme, u.Host = "https", net.JoinHostPort(uri.Host, "15671")
	}
	return u.String(), nil
}

// NewManagement reads the API at rawURL (http or https, credentials in
// the URL) for virtual host vhost.
func NewManagement(rawURL, vhost string) (*Management, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("broker: management URL must be http(s)://user:password@host:port/")
	}
	if vhost == "" {
		vhost = "/"
	}
	return &Management{base: u, vhost: vhost, client: &http.Client{Timeout: 10 * time.Second}}, nil
}

// QueueStat is one queue as the management API counts it.
type QueueStat struct {
	Name string `json:"name"`
	// Messages counts ready and unacknowledged messages.
	Messages  int `json:"messages"`
	Consumers int `json:"consumers"`
}

// Queues lists the queues of the virtual host whose names start with
// prefix.
func (m *Management) Queues(ctx context.Context, prefix string) ([]QueueStat, error) {
	var all []QueueStat
	if err := m.Do(ctx, http.MethodGet, m.VhostPath("queues")+"?columns=name,messages,consumers", nil, &all); err != nil {
		return nil, err
	}
	var out []QueueStat
	for _, q := range all {
		if strings.HasPrefix(q.Name, prefix) {
			out = append(out, q)
		}
	}
	return out, nil
}

// VhostPath is the API's path of a vhost-scoped resource, such as
// VhostPath("queues", name): /api/queues/<vhost>/<name>.
func (m *Management) VhostPath(kind string, names ...string) string {
	p := "/api/" + kind + "/" + url.PathEscape(m.vhost)
	for _, n := range names {
		p += "/" + url.PathEscape(n)
	}
	return p
}

// ManagementError is an answer other than 2xx, with the broker's reason.
type ManagementError struct {
	Method, Path string
	Status       int
	Reason       string
}

func (e *ManagementError) Error() string {
	hint := ""
	switch e.Status {
	case http.StatusUnauthorized:
		hint = " (wrong user or password, or a user without a management tag: `billing topology` needs the policymaker tag)"
	case http.StatusForbidden:
		hint = " (the user lacks a tag or permission for this: `billing topology` needs the policymaker tag)"
	}
	return fmt.Sprintf("broker: management API %s %s: %d %s: %s%s", e.Method, e.Path, e.Status, http.StatusText(e.Status), e.Reason, hint)
}

// Do calls the API: body, when not nil, is sent as JSON, and a 2xx answer
// is decoded into out when out is not nil. Any other answer is a
// *ManagementError.
func (m *Management) Do(ctx context.Context, method, path string, body, out any) error {
	var reader *bytes.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		reader = bytes.NewReader(b)
	} else {
		reader = bytes.NewReader(nil)
	}
	req, err := http.NewRequestWithContext(ctx, method, m.base.Scheme+"://"+m.base.Host+path, reader)
	if err != nil {
		return err
	}
	if pw, ok := m.base.User.Password(); ok {
		req.SetBasicAuth(m.base.User.Username(), pw)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := m.client.Do(req)
	if err != nil {
		return fmt.Errorf("broker: management API %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		var msg struct {
			Reason string `json:"reason"`
		}
		_ = json.NewDecoder(http.MaxBytesReader(nil, resp.Body, 1<<16)).Decode(&msg)
		return &ManagementError{Method: method, Path: path, Status: resp.StatusCode, Reason: msg.Reason}
	}
	if out != nil {
		return json.NewDecoder(resp.Body).Decode(out)
	}
	return nil
}

// MajorVersion is the broker's major version (3, 4, ...), from
// /api/overview.
func (m *Management) MajorVersion(ctx context.Context) (int, error) {
	var o struct {
		Version string `json:"rabbitmq_version"`
	}
	if err := m.Do(ctx, http.MethodGet, "/api/overview", nil, &o); err != nil {
		return 0, err
	}
	major, _, _ := strings.Cut(o.Version, ".")
	n, err := strconv.Atoi(major)
	if err != nil {
		return 0, fmt.Errorf("broker: management API: RabbitMQ version %q", o.Version)
	}
	return n, nil
}

// QueueInfo is what the API says of a queue: its type, the arguments it
// was declared with, the policy applied to it and its messages.
type QueueInfo struct {
	Name      string         `json:"name"`
	Type      string         `json:"type"`
	Arguments map[string]any `json:"arguments"`
	Policy    string         `json:"policy"`
	Messages  int            `json:"messages"`
}

// Queue reads one queue; found is false when it does not exist.
func (m *Management) Queue(ctx context.Context, name string) (q QueueInfo, found bool, err error) {
	err = m.Do(ctx, http.MethodGet, m.VhostPath("queues", name), nil, &q)
	if notFound(err) {
		return q, false, nil
	}
	return q, err == nil, err
}

func notFound(err error) bool {
	var merr *ManagementError
	return errors.As(err, &merr) && merr.Status == http.StatusNotFound
}
