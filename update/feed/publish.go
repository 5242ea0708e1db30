package feed

import (
	"crypto/sha256"
	"debug/buildinfo"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Binary is one file to publish, for one platform.
type Binary struct {
	Path     string // local file
	Platform string // "linux/amd64"; empty: read from the Go binary
}

// PublishOptions are the release's settings.
type PublishOptions struct {
	Percent    int
	Rollback   bool
	MinVersion string
	Notes      string
	// Now stamps the release and manifest (default time.Now).
	Now func() time.Time
}

// ReadManifestFile reads dir's manifest without checking its signature
// (the release tool re-signs it). A missing manifest is an empty one.
func ReadManifestFile(dir string) (*Manifest, error) {
	data, err := os.ReadFile(filepath.Join(dir, ManifestFile))
	if errors.Is(err, fs.ErrNotExist) {
		return &Manifest{Format: manifestFmt}, nil
	}
	if err != nil {
		return nil, err
	}
	return ParseManifest(data)
}

// WriteManifest signs m (after raising its serial) and writes it and its
// signature into dir, each atomically.
func WriteManifest(dir string, m *Manifest, key SecretKey, now time.Time) error {
	m.Format = manifestFmt
	m.Serial++
	m.Updated = now.UTC().Truncate(time.Second)
	data, err := m.Marshal()
	if err != nil {
		return err
	}
	sig := key.Sign(data, fmt.Sprintf("falconet manifest serial:%d", m.Serial))
	if err := writeAtomic(filepath.Join(dir, ManifestFile), data); err != nil {
		return err
	}
	return writeAtomic(filepath.Join(dir, ManifestSig), sig)
}

// BinaryPlatform reads "os/arch" from a Go binary's build information.
func BinaryPlatform(path string) (string, error) {
	bi, err := buildinfo.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("%s: cannot read the platform from the binary (%v); give it as FILE=os/arch", path, err)
	}
	var goos, goarch string
	for _, s := range bi.Settings {
		switch s.Key {
		case "GOOS":
			goos = s.Value
		case "GOARCH":
			goarch = s.Value
		}
	}
	if goos == "" || goarch == "" {
		return "", fmt.Errorf("%s: the binary does not record GOOS/GOARCH; give it as FILE=os/arch", path)
	}
	return Platform(goos, goarch), nil
}

// Publish adds release version with the binaries to the feed in dir:
// copies each binary to ArtifactPath, signs it, and re-signs the manifest.
func Publish(dir string, key SecretKey, version string, bins []Binary, o PublishOptions) (*Release, error) {
	if !ParseVersion(version).Valid() {
		return nil, fmt.Errorf("version %q: want MAJOR.MINOR.PATCH[-pre]", version)
	}
	if o.Percent < 0 || o.Percent > maxPercent {
		return nil, fmt.Errorf("percent %d: want 0-100", o.Percent)
	}
	if o.MinVersion != "" && !ParseVersion(o.MinVersion).Valid() {
		return nil, fmt.Errorf("min version %q: want MAJOR.MINOR.PATCH[-pre]", o.MinVersion)
	}
	if len(bins) == 0 {
		return nil, errors.New("no binary to publish")
	}
	now := time.Now
	if o.Now != nil {
		now = o.Now
	}
	m, err := ReadManifestFile(dir)
	if err != nil {
		return nil, err
	}
	if m.Find(version) != nil {
		return nil, fmt.Errorf("version %s is already in the feed %s", version, dir)
	}
	rel := Release{Version: version, Published: now().UTC().Truncate(time.Second), Percent: o.Percent,
		Rollback: o.Rollback, MinVersion: o.MinVersion, Notes: o.Notes, Artifacts: map[string]Artifact{}}
	for _, b := range bins {
		plat := b.Platform
		if plat == "" {
			if plat, err = BinaryPlatform(b.Path); err != nil {
				return nil, err
			}
		}
		goos, goarch, ok := strings.Cut(plat, "/")
		if !ok || goos == "" || goarch == "" || strings.ContainsAny(plat, " \\") || strings.Count(plat, "/") != 1 {
			return nil, fmt.Errorf("%s: platform %q: want os/arch", b.Path, plat)
		}
		if _, dup := rel.Artifacts[plat]; dup {
			return nil, fmt.Errorf("%s: a second binary for %s", b.Path, plat)
		}
		data, err := os.ReadFile(b.Path)
		if err != nil {
			return nil, err
		}
		if len(data) == 0 {
			return nil, fmt.Errorf("%s: empty file", b.Path)
		}
		rel.Artifacts[plat], err = writeArtifact(dir, key, version, goos, goarch, data)
		if err != nil {
			return nil, err
		}
	}
	m.Releases = append(m.Releases, rel)
	if err := WriteManifest(dir, m, key, now()); err != nil {
		return nil, err
	}
	return &m.Releases[len(m.Releases)-1], nil
}

// SignArtifact returns an artifact's manifest entry for data at path,
// signed by key.
func SignArtifact(key SecretKey, path string, data []byte) Artifact {
	sum := sha256.Sum256(data)
	sig := key.Sign(data, fmt.Sprintf("falconet artifact %s sha256:%x", filepath.Base(path), sum))
	return Artifact{Path: path, Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:]), Signature: string(sig)}
}

func writeArtifact(dir string, key SecretKey, version, goos, goarch string, data []byte) (Artifact, error) {
	rel := ArtifactPath(version, goos, goarch)
	full := filepath.Join(dir, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		return Artifact{}, err
	}
	a := SignArtifact(key, rel, data)
	if err := writeAtomic(full, data); err != nil {
		return Artifact{}, err
	}
	return a, writeAtomic(full+SignatureExt, []byte(a.Signature))
}

// SetPercent changes the newest release's rollout percentage and re-signs.
func SetPercent(dir string, key SecretKey, percent int, now time.Time) (*Release, error) {
	if percent < 0 || percent > maxPercent {
		return nil, fmt.Errorf("percent %d: want 0-100", percent)
	}
	return changeNewest(dir, key, now, func(r *Release) error {
		if r.Halted {
			return fmt.Errorf("release %s is halted; publish a new version instead", r.Version)
		}
		r.Percent = percent
		return nil
	})
}

// Halt stops the newest release: no agent takes it any more and agents
// running it return to their previous version. It re-signs the manifest.
func Halt(dir string, key SecretKey, now time.Time) (*Release, error) {
	return changeNewest(dir, key, now, func(r *Release) error {
		r.Halted = true
		return nil
	})
}

func changeNewest(dir string, key SecretKey, now time.Time, change func(*Release) error) (*Release, error) {
	m, err := ReadManifestFile(dir)
	if err != nil {
		return nil, err
	}
	if len(m.Releases) == 0 {
		return nil, fmt.Errorf("feed %s has no release", dir)
	}
	r := &m.Releases[len(m.Releases)-1]
	if err := change(r); err != nil {
		return nil, err
	}
	if err := WriteManifest(dir, m, key, now); err != nil {
		return nil, err
	}
	return r, nil
}

func writeAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
