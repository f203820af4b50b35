// Package netaddr holds the address checks that settings and the load
// generator share: a leaf, so that neither needs the other.
package netaddr

import (
	"net"
	"strings"
)

// IsLoopback reports whether host (a name or an IP, without port or
// brackets) is this machine: localhost, 127.0.0.0/8 or ::1.
func IsLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
