package pkgbuild

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/template"
	"time"

	"go.yaml.in/yaml/v3"
)

// ErrUnsupported is wrapped by every error about a .goreleaser.yaml key this
// package cannot translate.
var ErrUnsupported = errors.New("pkgbuild: unsupported")

// Config is the part of a .goreleaser.yaml that produces packages.
type Config struct {
	path     string
	builds   map[string]map[string]any // by id
	nfpms    []map[string]any          // in file order
	snapshot string                    // snapshot.version_template
	project  string
}

// Load reads and checks a .goreleaser.yaml.
func Load(path string) (*Config, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var doc map[string]any
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	c := &Config{path: path, builds: map[string]map[string]any{}, snapshot: "{{ .Version }}-SNAPSHOT-{{ .ShortCommit }}"}
	if v, ok := doc["version"]; !ok || fmt.Sprint(v) != "2" {
		return nil, fmt.Errorf("%s: version: got %v, want 2", path, v)
	}
	c.project, _ = doc["project_name"].(string)
	if s, ok := doc["snapshot"].(map[string]any); ok {
		if t, ok := s["version_template"].(string); ok {
			c.snapshot = t
		}
	}
	builds, _ := doc["builds"].([]any)
	for i, b := range builds {
		m, ok := b.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%s: builds[%d]: not a mapping", path, i)
		}
		for k := range m {
			if !slices.Contains(buildKeys, k) {
				return nil, fmt.Errorf("%s: builds[%d].%s: %w key (known: %s)", path, i, k, ErrUnsupported, strings.Join(buildKeys, ", "))
			}
		}
		id, _ := m["id"].(string)
		if id == "" {
			return nil, fmt.Errorf("%s: builds[%d].id: empty", path, i)
		}
		c.builds[id] = m
	}
	nfpms, _ := doc["nfpms"].([]any)
	if len(nfpms) == 0 {
		return nil, fmt.Errorf("%s: nfpms: empty", path)
	}
	for i, n := range nfpms {
		m, ok := n.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%s: nfpms[%d]: not a mapping", path, i)
		}
		for k := range m {
			if !slices.Contains(nfpmKeys, k) {
				return nil, fmt.Errorf("%s: nfpms[%d].%s: %w key (known: %s)", path, i, k, ErrUnsupported, strings.Join(nfpmKeys, ", "))
			}
		}
		// nfpm names packages conventionally; goreleaser must do the same.
		if t, ok := m["file_name_template"]; ok && strings.ReplaceAll(fmt.Sprint(t), " ", "") != "{{.ConventionalFileName}}" {
			return nil, fmt.Errorf("%s: nfpms[%d].file_name_template: %w value %q (only {{ .ConventionalFileName }}, nfpm's naming)", path, i, ErrUnsupported, t)
		}
		for _, id := range stringList(m["ids"]) {
			if _, ok := c.builds[id]; !ok {
				return nil, fmt.Errorf("%s: nfpms[%d].ids: no build with id %q", path, i, id)
			}
		}
		c.nfpms = append(c.nfpms, m)
	}
	return c, nil
}

// The keys translated from builds entries and nfpms entries.
var (
	buildKeys = []string{"id", "binary", "main", "env", "goos", "goarch", "flags", "ldflags", "mod_timestamp"}
	nfpmKeys  = []string{"id", "package_name", "ids", "formats", "bindir", "vendor", "homepage", "maintainer",
		"license", "section", "priority", "mtime", "file_name_template", "description", "contents", "overrides", "scripts",
		"dependencies", "recommends", "suggests", "conflicts", "replaces", "provides", "umask", "deb", "rpm"}
)

// Packages lists the nfpms ids in file order.
func (c *Config) Packages() []string {
	var ids []string
	for _, n := range c.nfpms {
		ids = append(ids, n["id"].(string))
	}
	return ids
}

// TemplateData is what templates in .goreleaser.yaml may use. Fields mirror
// goreleaser's of the same name.
type TemplateData struct {
	ProjectName     string
	Version         string // without the leading v
	Tag             string
	ShortCommit     string
	FullCommit      string
	Commit          string
	CommitDate      string // RFC 3339
	CommitTimestamp string // Unix seconds
	Os              string
	Arch            string
}

func render(name, text string, data TemplateData) (string, error) {
	if !strings.Contains(text, "{{") {
		return text, nil
	}
	t, err := template.New(name).Option("missingkey=error").Funcs(template.FuncMap{
		"incpatch": func(v string) (string, error) { return incVersion(v, 2) },
		"incminor": func(v string) (string, error) { return incVersion(v, 1) },
		"incmajor": func(v string) (string, error) { return incVersion(v, 0) },
	}).Parse(text)
	if err != nil {
		return "", fmt.Errorf("%s: %w", name, err)
	}
	var b strings.Builder
	if err := t.Execute(&b, data); err != nil {
		return "", fmt.Errorf("%s: %w", name, err)
	}
	return b.String(), nil
}

func incVersion(v string, part int) (string, error) {
	core, _, _ := strings.Cut(strings.TrimPrefix(v, "v"), "-")
	f := strings.Split(core, ".")
	if len(f) != 3 {
		return "", fmt.Errorf("version %q: want MAJOR.MINOR.PATCH", v)
	}
	n := make([]int, 3)
	for i, s := range f {
		x, err := strconv.Atoi(s)
		if err != nil {
			return "", fmt.Errorf("version %q: %w", v, err)
		}
		n[i] = x
	}
	n[part]++
	for i := part + 1; i < 3; i++ {
		n[i] = 0
	}
	return fmt.Sprintf("%d.%d.%d", n[0], n[1], n[2]), nil
}

// Options says what to build.
type Options struct {
	// Root is the repository root: sources and relative paths in the config
	// are resolved against it. Default: the config file's directory.
	Root string
	// Dist receives binaries (Dist/build/...) and packages. Required.
	Dist string
	// Version overrides the version derived from git (as goreleaser would).
	Version string
	// Packages are nfpms ids; empty: all.
	Packages []string
	// Arches (goarch values); empty: every goarch of the builds.
	Arches []string
	// Formats (deb, rpm); empty: each entry's formats.
	Formats []string
	// ReplaceSource maps a contents src (as written in the config) to another
	// file, for tests that need a changed config file in a newer build.
	ReplaceSource map[string]string
	// Log receives one line per step; nil: discarded.
	Log io.Writer
}

// Artifact is one package built.
type Artifact struct {
	Package string // nfpms id
	Name    string // package name
	Format  string
	Arch    string
	Version string
	Path    string
}

// Build builds the binaries and packages Options asks for.
func (c *Config) Build(ctx context.Context, opts Options) ([]Artifact, error) {
	if opts.Dist == "" {
		return nil, errors.New("pkgbuild: Options.Dist: empty")
	}
	if opts.Root == "" {
		opts.Root = filepath.Dir(c.path)
	}
	root, err := filepath.Abs(opts.Root)
	if err != nil {
		return nil, err
	}
	dist, err := filepath.Abs(opts.Dist)
	if err != nil {
		return nil, err
	}
	logw := opts.Log
	if logw == nil {
		logw = io.Discard
	}
	nfpmBin, err := FindNFPM()
	if err != nil {
		return nil, err
	}
	data, err := c.templateData(ctx, root, opts.Version)
	if err != nil {
		return nil, err
	}
	for _, id := range opts.Packages {
		if !slices.Contains(c.Packages(), id) {
			return nil, fmt.Errorf("pkgbuild: package %q: not in %s (have %s)", id, c.path, strings.Join(c.Packages(), ", "))
		}
	}

	var out []Artifact
	built := map[string]string{} // build id/arch -> binary path
	for _, n := range c.nfpms {
		id := n["id"].(string)
		if len(opts.Packages) > 0 && !slices.Contains(opts.Packages, id) {
			continue
		}
		buildIDs := stringList(n["ids"])
		arches := opts.Arches
		if len(arches) == 0 {
			for _, b := range buildIDs {
				for _, a := range stringList(c.builds[b]["goarch"]) {
					if !slices.Contains(arches, a) {
						arches = append(arches, a)
					}
				}
			}
		}
		formats := opts.Formats
		if len(formats) == 0 {
			formats = stringList(n["formats"])
		}
		for _, arch := range arches {
			d := data
			d.Os, d.Arch = "linux", arch
			var binaries []string
			for _, b := range buildIDs {
				key := b + "/" + arch
				if _, ok := built[key]; !ok {
					p, err := c.buildBinary(ctx, root, dist, b, arch, d, logw)
					if err != nil {
						return nil, err
					}
					built[key] = p
				}
				binaries = append(binaries, built[key])
			}
			conf, err := c.nfpmConfig(n, arch, d, binaries, opts.ReplaceSource, root)
			if err != nil {
				return nil, err
			}
			if err := os.MkdirAll(filepath.Join(dist, "build"), 0o755); err != nil {
				return nil, err
			}
			confPath := filepath.Join(dist, "build", fmt.Sprintf("nfpm-%s-%s.yaml", id, arch))
			if err := os.WriteFile(confPath, conf, 0o644); err != nil {
				return nil, err
			}
			for _, format := range formats {
				before, _ := filepath.Glob(filepath.Join(dist, "*."+format))
				cmd := exec.CommandContext(ctx, nfpmBin, "package", "-f", confPath, "-p", format, "-t", dist+"/")
				cmd.Dir = root
				var outBuf bytes.Buffer
				cmd.Stdout, cmd.Stderr = &outBuf, &outBuf
				if err := cmd.Run(); err != nil {
					return nil, fmt.Errorf("pkgbuild: nfpm %s %s/%s: %w\n%s", id, format, arch, err, outBuf.String())
				}
				path := createdPath(outBuf.String())
				if path == "" {
					after, _ := filepath.Glob(filepath.Join(dist, "*."+format))
					return nil, fmt.Errorf("pkgbuild: nfpm %s %s/%s: no package named in its output (%d files before, %d after)\n%s", id, format, arch, len(before), len(after), outBuf.String())
				}
				if !filepath.IsAbs(path) {
					path = filepath.Join(root, path)
				}
				fmt.Fprintf(logw, "pkgbuild: %s\n", path)
				out = append(out, Artifact{Package: id, Name: n["package_name"].(string), Format: format, Arch: arch, Version: d.Version, Path: path})
			}
		}
	}
	return out, nil
}

// createdPath finds the file in nfpm's "created package: PATH" line.
func createdPath(output string) string {
	for _, line := range strings.Split(output, "\n") {
		if _, p, ok := strings.Cut(line, "created package: "); ok {
			return strings.TrimSpace(p)
		}
	}
	return ""
}

// FindNFPM returns the nfpm command: on PATH, else in $GOPATH/bin.
func FindNFPM() (string, error) {
	if p, err := exec.LookPath("nfpm"); err == nil {
		return p, nil
	}
	gopath := os.Getenv("GOPATH")
	if gopath == "" {
		if home, err := os.UserHomeDir(); err == nil {
			gopath = filepath.Join(home, "go")
		}
	}
	p := filepath.Join(gopath, "bin", "nfpm")
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	return "", errors.New("pkgbuild: nfpm not found on PATH or in $GOPATH/bin (go install github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2)")
}

func git(ctx context.Context, root string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = root
	out, err := cmd.Output()
	return strings.TrimSpace(string(out)), err
}

// templateData derives version and commit fields as goreleaser does.
func (c *Config) templateData(ctx context.Context, root, version string) (TemplateData, error) {
	d := TemplateData{ProjectName: c.project}
	var err error
	if d.FullCommit, err = git(ctx, root, "rev-parse", "HEAD"); err != nil {
		return d, fmt.Errorf("pkgbuild: git rev-parse HEAD in %s: %w (a git commit is needed, as for goreleaser)", root, err)
	}
	d.Commit = d.FullCommit
	d.ShortCommit, _ = git(ctx, root, "rev-parse", "--short", "HEAD")
	ct, _ := git(ctx, root, "log", "-1", "--format=%ct")
	secs, err := strconv.ParseInt(ct, 10, 64)
	if err != nil {
		return d, fmt.Errorf("pkgbuild: commit time %q: %w", ct, err)
	}
	d.CommitTimestamp = ct
	d.CommitDate = time.Unix(secs, 0).UTC().Format(time.RFC3339)

	if version != "" {
		d.Version, d.Tag = strings.TrimPrefix(version, "v"), "v"+strings.TrimPrefix(version, "v")
		return d, nil
	}
	tag, err := git(ctx, root, "describe", "--tags", "--abbrev=0", "--match", "v[0-9]*")
	if err != nil || tag == "" {
		tag = "v0.0.0"
	}
	d.Tag, d.Version = tag, strings.TrimPrefix(tag, "v")
	if exact, err := git(ctx, root, "describe", "--tags", "--exact-match", "--match", "v[0-9]*", "HEAD"); err == nil && exact != "" {
		if dirty, _ := git(ctx, root, "status", "--porcelain", "--untracked-files=no"); dirty == "" {
			return d, nil
		}
	}
	v, err := render("snapshot.version_template", c.snapshot, d)
	if err != nil {
		return d, err
	}
	d.Version = v
	return d, nil
}

func (c *Config) buildBinary(ctx context.Context, root, dist, id, arch string, d TemplateData, logw io.Writer) (string, error) {
	b := c.builds[id]
	if !slices.Contains(stringList(b["goos"]), "linux") {
		return "", fmt.Errorf("pkgbuild: builds %s: goos has no linux", id)
	}
	if !slices.Contains(stringList(b["goarch"]), arch) {
		return "", fmt.Errorf("pkgbuild: builds %s: goarch has no %s (has %v)", id, arch, stringList(b["goarch"]))
	}
	binary, _ := b["binary"].(string)
	if binary == "" {
		binary = id
	}
	main, _ := b["main"].(string)
	if main == "" {
		main = "."
	}
	var ldflags []string
	for i, f := range stringList(b["ldflags"]) {
		r, err := render(fmt.Sprintf("builds %s ldflags[%d]", id, i), f, d)
		if err != nil {
			return "", err
		}
		ldflags = append(ldflags, r)
	}
	out := filepath.Join(dist, "build", id+"_linux_"+arch, binary)
	args := append([]string{"build"}, stringList(b["flags"])...)
	args = append(args, "-ldflags", strings.Join(ldflags, " "), "-o", out, main)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH="+arch)
	for _, e := range stringList(b["env"]) {
		r, err := render("builds "+id+" env", e, d)
		if err != nil {
			return "", err
		}
		cmd.Env = append(cmd.Env, r)
	}
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("pkgbuild: go %s (GOARCH=%s): %w\n%s", strings.Join(args, " "), arch, err, buf.String())
	}
	if ts, ok := b["mod_timestamp"].(string); ok {
		r, err := render("builds "+id+" mod_timestamp", ts, d)
		if err != nil {
			return "", err
		}
		secs, err := strconv.ParseInt(r, 10, 64)
		if err != nil {
			return "", fmt.Errorf("pkgbuild: builds %s mod_timestamp %q: %w", id, r, err)
		}
		if err := os.Chtimes(out, time.Unix(secs, 0), time.Unix(secs, 0)); err != nil {
			return "", err
		}
	}
	fmt.Fprintf(logw, "pkgbuild: built %s for linux/%s in %s\n", binary, arch, time.Since(start).Round(100*time.Millisecond))
	return out, nil
}

// nfpmConfig translates one nfpms entry into nfpm's own configuration.
func (c *Config) nfpmConfig(n map[string]any, arch string, d TemplateData, binaries []string, replace map[string]string, root string) ([]byte, error) {
	id := n["id"].(string)
	conf := map[string]any{"arch": arch, "platform": "linux", "version": d.Version}
	bindir, _ := n["bindir"].(string)
	if bindir == "" {
		bindir = "/usr/bin"
	}
	var contents []any
	for _, bin := range binaries {
		contents = append(contents, map[string]any{
			"src": bin, "dst": filepath.Join(bindir, filepath.Base(bin)),
			"file_info": map[string]any{"mode": 0o755},
		})
	}
	keys := make([]string, 0, len(n))
	for k := range n {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if slices.Contains([]string{"id", "ids", "formats", "bindir", "file_name_template"}, k) {
			continue // used above, or nfpm's own behaviour
		}
		v, err := renderAll(fmt.Sprintf("nfpms %s %s", id, k), n[k], d)
		if err != nil {
			return nil, err
		}
		switch k {
		case "package_name":
			conf["name"] = v
		case "dependencies":
			conf["depends"] = v
		case "contents":
			list, _ := v.([]any)
			for _, e := range list {
				if m, ok := e.(map[string]any); ok {
					if src, ok := m["src"].(string); ok {
						if r, ok := replace[src]; ok {
							m["src"] = r
						} else if !filepath.IsAbs(src) {
							m["src"] = filepath.Join(root, src)
						}
					}
				}
				contents = append(contents, e)
			}
		case "overrides":
			m, _ := v.(map[string]any)
			for format, o := range m {
				om, ok := o.(map[string]any)
				if !ok {
					return nil, fmt.Errorf("nfpms %s overrides.%s: not a mapping", id, format)
				}
				if dep, ok := om["dependencies"]; ok {
					om["depends"] = dep
					delete(om, "dependencies")
				}
				absScripts(om["scripts"], root)
			}
			conf["overrides"] = m
		case "scripts":
			absScripts(v, root)
			conf["scripts"] = v
		default:
			conf[k] = v
		}
	}
	conf["contents"] = contents
	return yaml.Marshal(conf)
}

func absScripts(v any, root string) {
	m, _ := v.(map[string]any)
	for k, s := range m {
		if p, ok := s.(string); ok && !filepath.IsAbs(p) {
			m[k] = filepath.Join(root, p)
		}
	}
}

// renderAll renders templates in every string inside v.
func renderAll(name string, v any, d TemplateData) (any, error) {
	switch x := v.(type) {
	case string:
		return render(name, x, d)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			r, err := renderAll(name, e, d)
			if err != nil {
				return nil, err
			}
			out[i] = r
		}
		return out, nil
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			r, err := renderAll(name+"."+k, e, d)
			if err != nil {
				return nil, err
			}
			out[k] = r
		}
		return out, nil
	default:
		return v, nil
	}
}

func stringList(v any) []string {
	switch x := v.(type) {
	case string:
		return []string{x}
	case []any:
		var out []string
		for _, e := range x {
			out = append(out, fmt.Sprint(e))
		}
		return out
	}
	return nil
}
