package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Management reads RabbitMQ's management HTTP API, for what AMQP cannot
// tell: the queues that exist. It only reads.
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
	path := "/api/queues/" + url.PathEscape(m.vhost) + "?columns=name,messages,consumers"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.base.Scheme+"://"+m.base.Host+path, nil)
	if err != nil {
		return nil, fmt.Errorf("broker: management: %w", err)
	}
	if pw, ok := m.base.User.Password(); ok {
		req.SetBasicAuth(m.base.User.Username(), pw)
	}
	resp, err := m.client.Do(req)
	if err != nil {
		// The client's error quotes the URL without its credentials.
		return nil, fmt.Errorf("broker: management: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var reason struct {
			Reason string `json:"reason"`
		}
		_ = json.NewDecoder(http.MaxBytesReader(nil, resp.Body, 1<<16)).Decode(&reason)
		return nil, fmt.Errorf("broker: management: list queues: %s: %s", resp.Status, reason.Reason)
	}
	var all []QueueStat
	if err := json.NewDecoder(resp.Body).Decode(&all); err != nil {
		return nil, fmt.Errorf("broker: management: list queues: %w", err)
	}
	var out []QueueStat
	for _, q := range all {
		if strings.HasPrefix(q.Name, prefix) {
			out = append(out, q)
		}
	}
	return out, nil
}
