package pkgbuild

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

func TestLoadRepositoryConfig(t *testing.T) {
	c, err := Load("../../.goreleaser.yaml")
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(c.Packages(), " ")
	if want := "falconet-agent falconet-relay falconet-saver falconet"; got != want {
		t.Errorf("packages: got %q, want %q", got, want)
	}
}

func TestLoadRejects(t *testing.T) {
	base := "version: 2\nbuilds:\n  - id: a\n    main: ./cmd/a\n"
	for _, tc := range []struct{ name, yaml, want string }{
		{"unknown nfpm key", base + "nfpms:\n  - id: a\n    ids: [a]\n    templated_contents: []\n", "nfpms[0].templated_contents"},
		{"unknown build key", "version: 2\nbuilds:\n  - id: a\n    hooks: {}\nnfpms:\n  - id: a\n", "builds[0].hooks"},
		{"missing build", base + "nfpms:\n  - id: a\n    ids: [b]\n", `no build with id "b"`},
		{"no nfpms", base, "nfpms: empty"},
		{"version 1", "version: 1\n", "version: got 1, want 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "g.yaml")
			if err := os.WriteFile(p, []byte(tc.yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := Load(p)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
	p := filepath.Join(t.TempDir(), "g.yaml")
	_ = os.WriteFile(p, []byte(base+"nfpms:\n  - id: a\n    ids: [a]\n    file_name_template: x\n"), 0o644)
	if _, err := Load(p); !errors.Is(err, ErrUnsupported) {
		t.Errorf("file_name_template: got %v, want ErrUnsupported", err)
	}
}

func TestRender(t *testing.T) {
	d := TemplateData{Version: "1.2.3", ShortCommit: "abc1234"}
	for _, tc := range []struct{ in, want string }{
		{"{{ incpatch .Version }}-dev.{{ .ShortCommit }}", "1.2.4-dev.abc1234"},
		{"{{ incminor .Version }}", "1.3.0"},
		{"{{ incmajor .Version }}", "2.0.0"},
		{"plain", "plain"},
	} {
		got, err := render("t", tc.in, d)
		if err != nil || got != tc.want {
			t.Errorf("render(%q): got %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	if _, err := render("t", "{{ .Nope }}", d); err == nil {
		t.Error("render of an unknown field: got no error, want one")
	}
}

func TestNFPMConfig(t *testing.T) {
	c, err := Load("../../.goreleaser.yaml")
	if err != nil {
		t.Fatal(err)
	}
	d := TemplateData{Version: "1.0.0", CommitDate: "2026-01-02T03:04:05Z"}
	raw, err := c.nfpmConfig(c.nfpms[0], "arm64", d, []string{"/dist/falconet-agent"}, nil, "/repo")
	if err != nil {
		t.Fatal(err)
	}
	var conf map[string]any
	if err := yaml.Unmarshal(raw, &conf); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{"name": "falconet-agent", "arch": "arm64", "version": "1.0.0", "mtime": "2026-01-02T03:04:05Z"} {
		if conf[k] != want {
			t.Errorf("%s: got %v, want %v", k, conf[k], want)
		}
	}
	contents := conf["contents"].([]any)
	first := contents[0].(map[string]any)
	if first["dst"] != "/usr/bin/falconet-agent" || first["src"] != "/dist/falconet-agent" {
		t.Errorf("binary entry: got %v", first)
	}
	rpm := conf["overrides"].(map[string]any)["rpm"].(map[string]any)["scripts"].(map[string]any)
	if rpm["postinstall"] != "/repo/packaging/scripts/rpm/falconet-agent/post" {
		t.Errorf("rpm postinstall: got %v, want the repo-rooted path", rpm["postinstall"])
	}
}
