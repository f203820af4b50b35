package config_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stripe-billing/billing/config"
)

// noDefault is how the README's configuration table shows an empty default.
const noDefault = "—"

func readRepoFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// section returns the body of the "## title" section of a markdown text.
func section(t *testing.T, md, title string) string {
	t.Helper()
	_, body, ok := strings.Cut(md, "\n## "+title+"\n")
	if !ok {
		t.Fatalf("README has no %q section", "## "+title)
	}
	body, _, _ = strings.Cut(body, "\n## ")
	return body
}

// configRow is what the README's configuration table shows of a variable.
type configRow struct{ def, meaning string }

// configTable maps each variable of the README's configuration table to the
// default and meaning it shows.
func configTable(t *testing.T, readme string) map[string]configRow {
	t.Helper()
	rows := map[string]configRow{}
	for _, line := range strings.Split(section(t, readme, "Configuration"), "\n") {
		cells := strings.Split(strings.Trim(strings.TrimSpace(line), "|"), "|")
		if len(cells) < 3 {
			continue
		}
		name := strings.TrimSpace(cells[0])
		if !strings.HasPrefix(name, "`") {
			continue // header or separator
		}
		if _, dup := rows[name]; dup {
			t.Errorf("README configuration table lists %s twice", name)
		}
		def := strings.TrimSpace(cells[1])
		if def == noDefault {
			def = ""
		} else {
			def = strings.Trim(def, "`")
		}
		rows[strings.Trim(name, "`")] = configRow{def: def, meaning: strings.TrimSpace(strings.Join(cells[2:], "|"))}
	}
	return rows
}

func TestReadmeConfigurationTable(t *testing.T) {
	t.Parallel()
	rows := configTable(t, readRepoFile(t, "README.md"))
	for _, v := range config.Vars {
		t.Run(v.Name, func(t *testing.T) {
			row, ok := rows[v.Name]
			if !ok {
				t.Fatalf("README configuration table lacks %s", v.Name)
			}
			if row.def != v.Default {
				t.Errorf("README shows %s default %q, config.Vars says %q", v.Name, row.def, v.Default)
			}
			if row.meaning != v.Description {
				t.Errorf("README says %s means %q, config.Vars says %q", v.Name, row.meaning, v.Description)
			}
		})
	}
	t.Run("no stale rows", func(t *testing.T) {
		for name := range rows {
			if !slices.ContainsFunc(config.Vars, func(v config.Var) bool { return v.Name == name }) {
				t.Errorf("README configuration table lists %s, which config.Vars does not declare", name)
			}
		}
	})
}

func TestReadmeQuickStart(t *testing.T) {
	t.Parallel()
	readme := readRepoFile(t, "README.md")
	quick := section(t, readme, "Quick start")
	_, block, ok := strings.Cut(quick, "```sh\n")
	if !ok {
		t.Fatal("Quick start has no ```sh block")
	}
	block, _, _ = strings.Cut(block, "```")
	var commands []string
	for _, l := range strings.Split(block, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			commands = append(commands, l)
		}
	}
	want := []string{"docker compose up --build", "make test"}
	if !slices.Equal(commands, want) {
		t.Fatalf("Quick start commands %q, want exactly %q", commands, want)
	}

	// CI runs the README's test command, and make knows it.
	t.Run(".ci/run runs make test", func(t *testing.T) {
		var last string
		for _, l := range strings.Split(readRepoFile(t, ".ci/run"), "\n") {
			if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
				last = l
			}
		}
		if last != "make test" {
			t.Errorf(".ci/run ends with %q, want the README's test command %q", last, "make test")
		}
	})
	t.Run("Makefile has a test target", func(t *testing.T) {
		if !strings.Contains("\n"+readRepoFile(t, "Makefile"), "\ntest:") {
			t.Error("Makefile has no test target")
		}
	})
}
