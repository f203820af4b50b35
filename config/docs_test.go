package config_test

import (
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// maxReadmeBytes keeps the README a front door: the runbook, operations,
// benchmarks and design notes live in docs/ and the README links them.
const maxReadmeBytes = 15000

func TestReadmeSize(t *testing.T) {
	t.Parallel()
	if n := len(readRepoFile(t, "README.md")); n > maxReadmeBytes {
		t.Errorf("README.md is %d bytes, want at most %d: move detail to docs/ and link it", n, maxReadmeBytes)
	}
}

// maxDocsBytes and maxBenchmarksBytes keep docs/ what a newcomer reads in
// a sitting (issue 26): each fact stated once, in one page, and linked
// from the others; benchmarks.md the table, how to run it and what limits
// each figure, with the history of how a figure moved left to commit
// messages.
const (
	maxDocsBytes       = 100000
	maxBenchmarksBytes = 12000
)

func TestDocsSize(t *testing.T) {
	t.Parallel()
	total := 0
	for _, page := range docPages(t)[1:] {
		n := len(readRepoFile(t, page))
		total += n
		if page == "docs/benchmarks.md" && n > maxBenchmarksBytes {
			t.Errorf("%s is %d bytes, want at most %d: the table, how to run it and what limits each figure; a figure's history goes in the commit message", page, n, maxBenchmarksBytes)
		}
	}
	if total > maxDocsBytes {
		t.Errorf("docs/*.md are %d bytes together, want at most %d: state each fact once, in one page, and link it from the others", total, maxDocsBytes)
	}
}

// markdownLink matches the target of [text](target) and ![alt](target),
// with an optional "title".
var markdownLink = regexp.MustCompile(`\]\(([^)\s]+)(?:\s+"[^"]*")?\)`)

// headingSlug is how GitHub turns a heading into its anchor.
func headingSlug(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(heading)) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
			b.WriteRune(r)
		}
	}
	return b.String()
}

// prose drops the fenced code blocks of a markdown text: what looks like a
// link or a heading in a code block is neither.
func prose(md string) string {
	var out []string
	fenced := false
	for _, line := range strings.Split(md, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			fenced = !fenced
			continue
		}
		if !fenced {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

// anchors lists the heading anchors of a markdown text.
func anchors(md string) []string {
	var out []string
	for _, line := range strings.Split(prose(md), "\n") {
		if strings.HasPrefix(line, "#") {
			out = append(out, headingSlug(strings.TrimLeft(line, "#")))
		}
	}
	return out
}

// docPages are the markdown files whose links are checked, relative to the
// repository root: the README and every page of docs/.
func docPages(t *testing.T) []string {
	t.Helper()
	pages, err := filepath.Glob(filepath.Join("..", "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	out := []string{"README.md"}
	for _, p := range pages {
		out = append(out, filepath.ToSlash(strings.TrimPrefix(p, ".."+string(filepath.Separator))))
	}
	return out
}

// TestDocsLinks checks that every relative link of the README and of
// docs/*.md names a file of the repository (and, with a #fragment into a
// markdown page, one of its headings), and that the README links every
// page of docs/.
func TestDocsLinks(t *testing.T) {
	t.Parallel()
	pages := docPages(t)
	if len(pages) < 2 {
		t.Fatal("docs/ has no markdown page")
	}
	readmeTargets := map[string]bool{}
	for _, page := range pages {
		t.Run(page, func(t *testing.T) {
			md := readRepoFile(t, page)
			for _, m := range markdownLink.FindAllStringSubmatch(prose(md), -1) {
				target := m[1]
				if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
					continue // not a file of the repository
				}
				file, fragment, _ := strings.Cut(target, "#")
				resolved := page
				if file != "" {
					resolved = path.Join(path.Dir(page), file)
					if strings.HasPrefix(resolved, "../") {
						t.Errorf("link %q leaves the repository", target)
						continue
					}
					if _, err := os.Stat(filepath.Join("..", filepath.FromSlash(resolved))); err != nil {
						t.Errorf("link %q: %s does not exist", target, resolved)
						continue
					}
				}
				if page == "README.md" {
					readmeTargets[resolved] = true
				}
				if fragment != "" && strings.HasSuffix(resolved, ".md") {
					if !slices.Contains(anchors(readRepoFile(t, resolved)), fragment) {
						t.Errorf("link %q: %s has no heading #%s", target, resolved, fragment)
					}
				}
			}
		})
	}
	t.Run("README links every docs page", func(t *testing.T) {
		for _, page := range pages[1:] {
			if !readmeTargets[page] {
				t.Errorf("README.md does not link %s", page)
			}
		}
	})
}

// codeMapEntry matches a code map line: "- `package`..." .
var codeMapEntry = regexp.MustCompile("^- `([^`]+)`")

// TestReadmeCodeMap checks that the README's code map has a line for every
// Go package of the module, and one only.
// TestReadmeCodeMapLayers holds the imports to one direction: the code
// map lists the packages from the leaves up, and a package's code (its
// tests aside) imports only packages listed above it, so that the domain
// never reaches for the transport, nor a library for the command.
func TestReadmeCodeMapLayers(t *testing.T) {
	t.Parallel()
	rank := map[string]int{}
	for _, line := range strings.Split(section(t, readRepoFile(t, "README.md"), "Code map"), "\n") {
		if m := codeMapEntry.FindStringSubmatch(line); m != nil {
			rank[m[1]] = len(rank)
		}
	}
	const module = "github.com/stripe-billing/billing/"
	cmd := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Imports " "}}`, "./...")
	cmd.Dir = ".."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	checked := 0
	for line := range strings.SplitSeq(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		pkg := strings.TrimPrefix(fields[0], module)
		for _, imp := range fields[1:] {
			dep, ours := strings.CutPrefix(imp, module)
			if !ours {
				continue
			}
			checked++
			if rank[dep] >= rank[pkg] {
				t.Errorf("%s imports %s, listed after it in the README's code map: a lower layer reaches a higher one", pkg, dep)
			}
		}
	}
	if checked < 20 {
		t.Fatalf("checked %d imports of the module's packages: go list did not say what this test thinks", checked)
	}
}

func TestReadmeCodeMap(t *testing.T) {
	t.Parallel()
	listed := map[string]int{}
	for _, line := range strings.Split(section(t, readRepoFile(t, "README.md"), "Code map"), "\n") {
		if m := codeMapEntry.FindStringSubmatch(line); m != nil {
			listed[m[1]]++
		}
	}
	if len(listed) == 0 {
		t.Fatal("README code map lists no package")
	}
	for pkg, n := range listed {
		if n > 1 {
			t.Errorf("README code map lists %s %d times", pkg, n)
		}
	}
	root := ".."
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() && p != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "vendor") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(name, ".go") {
			return nil
		}
		dir, err := filepath.Rel(root, filepath.Dir(p))
		if err != nil {
			return err
		}
		if pkg := filepath.ToSlash(dir); pkg != "." && listed[pkg] == 0 {
			t.Errorf("README code map has no line for package %s", pkg)
			listed[pkg] = -1 // reported once
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
