package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestHAProxyConfig(t *testing.T) {
	t.Parallel()
	template := string(RepoFile(t, HAProxyConfigFile))
	got, err := HAProxyConfig(template, "127.0.0.1:1001", "127.0.0.1:1002", []string{"127.0.0.1:2001", "127.0.0.1:2002"})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"\n    bind 127.0.0.1:1001\n", "\n    bind 127.0.0.1:1002\n", "\n    server api1 127.0.0.1:2001\n    server api2 127.0.0.1:2002\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("config lacks %q:\n%s", want, got)
		}
	}
	for _, gone := range []string{"bind :", "server-template"} {
		if strings.Contains(got, gone) {
			t.Errorf("config still has %q", gone)
		}
	}
	// Only the marked lines change.
	if a, b := strings.Count(template, "\n"), strings.Count(got, "\n"); b != a+1 {
		t.Errorf("%d lines from %d: want one more (two servers for the template's line)", b, a)
	}

	t.Run("RefusesAnUnmarkedOrMissingLine", func(t *testing.T) {
		t.Parallel()
		for name, broken := range map[string]string{
			"unmarked":  strings.Replace(template, " # tests: the webhook address", "", 1),
			"missing":   strings.Replace(template, "server-template api ", "server api ", 1),
			"duplicate": template + "\nfrontend other\n    bind :8404 # tests: the stats address\n",
		} {
			if _, err := HAProxyConfig(broken, "a", "b", []string{"c"}); err == nil {
				t.Errorf("%s: HAProxyConfig = nil error", name)
			}
		}
	})

	t.Run("HAProxyAcceptsIt", func(t *testing.T) {
		t.Parallel()
		bin, err := exec.LookPath("haproxy")
		if err != nil {
			bin = "/usr/sbin/haproxy"
		}
		if _, err := os.Stat(bin); err != nil {
			t.Skip("haproxy is not installed (.ci/run installs it)")
		}
		path := filepath.Join(t.TempDir(), "haproxy.cfg")
		if err := os.WriteFile(path, []byte(got), 0o600); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(bin, "-c", "-f", path).CombinedOutput(); err != nil {
			t.Fatalf("haproxy -c: %v\n%s", err, out)
		}
	})
}
