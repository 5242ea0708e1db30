package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/falconet/falconet/update/feed"
)

func init() {
	register("release", "sign and manage the agents' release feed (keygen|publish|rollout|halt)", runRelease)
}

// passwordEnv, when set, is the secret key's password (for scripts and CI);
// otherwise it is asked on the terminal (or read as one line from stdin).
const passwordEnv = "FALCONET_RELEASE_PASSWORD"

const releaseUsage = `usage:
  falconet release keygen  -out DIR [-unencrypted]
  falconet release publish -key FILE -feed DIR -version V [-percent N] [-rollback] [-min-version V] [-notes TEXT] BINARY[=os/arch]...
  falconet release rollout -key FILE -feed DIR -percent N
  falconet release halt    -key FILE -feed DIR

keygen   writes DIR/falconet.key (encrypted with a password unless -unencrypted)
         and DIR/falconet.pub; put the public key ("RW...") in the agents'
         [update] public_keys. Keys from the minisign command work too.
publish  copies each binary into the feed directory, signs it, and adds the
         release to the signed manifest (os/arch read from the Go binary when
         not given). -percent is the share of agents that take it (default 100).
rollout  changes the newest release's percentage and re-signs the manifest.
halt     stops the newest release: no agent takes it, and agents running it
         return to the version they ran before. Re-signs the manifest.

The password comes from $` + passwordEnv + ` or is asked for.
A feed is a plain directory any web server (or a relay's [update] mirror) serves.
`

func runRelease(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, releaseUsage)
		return exitError{code: 2}
	}
	verb, args := args[0], args[1:]
	fs := flag.NewFlagSet("release "+verb, flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), releaseUsage) }
	switch verb {
	case "keygen":
		out := fs.String("out", "", "directory for falconet.key and falconet.pub")
		unencrypted := fs.Bool("unencrypted", false, "write the secret key without a password (CI)")
		if err := parseNoArgs(fs, args); err != nil {
			return err
		}
		if *out == "" {
			return exitError{code: 2, msg: "-out DIR is required"}
		}
		return releaseKeygen(*out, *unencrypted)
	case "publish":
		keyFile := fs.String("key", "", "secret key file")
		feedDir := fs.String("feed", "", "feed directory")
		ver := fs.String("version", "", "release version (MAJOR.MINOR.PATCH[-pre])")
		percent := fs.Int("percent", 100, "share of agents that take the release (0-100)")
		rollback := fs.Bool("rollback", false, "allow agents on newer versions to move to this one")
		minVersion := fs.String("min-version", "", "only agents running at least this version take it")
		notes := fs.String("notes", "", "release notes")
		if err := fs.Parse(args); err != nil {
			return err
		}
		if *keyFile == "" || *feedDir == "" || *ver == "" || fs.NArg() == 0 {
			return exitError{code: 2, msg: "-key, -feed, -version and at least one BINARY are required"}
		}
		var bins []feed.Binary
		for _, a := range fs.Args() {
			path, plat, _ := strings.Cut(a, "=")
			bins = append(bins, feed.Binary{Path: path, Platform: plat})
		}
		key, err := readKey(*keyFile)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(*feedDir, 0o755); err != nil {
			return err
		}
		rel, err := feed.Publish(*feedDir, key, *ver, bins, feed.PublishOptions{Percent: *percent,
			Rollback: *rollback, MinVersion: *minVersion, Notes: *notes})
		if err != nil {
			return exitError{code: 1, msg: err.Error()}
		}
		for plat, a := range rel.Artifacts {
			fmt.Printf("published %s %s: %s (%d bytes, sha256 %s)\n", rel.Version, plat, a.Path, a.Size, a.SHA256)
		}
		fmt.Printf("release %s at %d %%; manifest signed by key %X\n", rel.Version, rel.Percent, key.ID())
		return nil
	case "rollout", "halt":
		keyFile := fs.String("key", "", "secret key file")
		feedDir := fs.String("feed", "", "feed directory")
		percent := -1
		if verb == "rollout" {
			fs.IntVar(&percent, "percent", -1, "new share of agents (0-100)")
		}
		if err := parseNoArgs(fs, args); err != nil {
			return err
		}
		if *keyFile == "" || *feedDir == "" || (verb == "rollout" && percent < 0) {
			if verb == "rollout" {
				return exitError{code: 2, msg: "-key, -feed and -percent are required"}
			}
			return exitError{code: 2, msg: "-key and -feed are required"}
		}
		key, err := readKey(*keyFile)
		if err != nil {
			return err
		}
		var rel *feed.Release
		if verb == "rollout" {
			rel, err = feed.SetPercent(*feedDir, key, percent, time.Now())
		} else {
			rel, err = feed.Halt(*feedDir, key, time.Now())
		}
		if err != nil {
			return exitError{code: 1, msg: err.Error()}
		}
		if verb == "rollout" {
			fmt.Printf("release %s now at %d %%\n", rel.Version, rel.Percent)
		} else {
			fmt.Printf("release %s halted; agents running it return to their previous version\n", rel.Version)
		}
		return nil
	}
	fmt.Fprint(os.Stderr, releaseUsage)
	if isHelp(verb) {
		return flag.ErrHelp // help asked for: main exits 0, the usage went to stdout
	}
	return exitError{code: 2, msg: fmt.Sprintf("unknown verb %q", verb)}
}

func parseNoArgs(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return exitError{code: 2, msg: fmt.Sprintf("unexpected arguments %q", fs.Args())}
	}
	return nil
}

func releaseKeygen(dir string, unencrypted bool) error {
	keyPath, pubPath := filepath.Join(dir, "falconet.key"), filepath.Join(dir, "falconet.pub")
	for _, p := range []string{keyPath, pubPath} {
		if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
			return exitError{code: 1, msg: fmt.Sprintf("%s exists; refusing to overwrite a key", p)}
		}
	}
	password := ""
	if !unencrypted {
		var err error
		if password, err = askPassword(true); err != nil {
			return err
		}
		if password == "" {
			return exitError{code: 1, msg: "empty password; use -unencrypted for a key without one"}
		}
	}
	key, err := feed.GenerateKey()
	if err != nil {
		return err
	}
	data, err := key.Marshal(password, feed.SensitiveCost)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(keyPath, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.WriteFile(pubPath, key.PublicKeyFile(), 0o644); err != nil {
		return err
	}
	fmt.Printf("secret key: %s\npublic key: %s\n\nagent.toml:\n[update]\npublic_keys = [%q]\n", keyPath, pubPath, key.PublicKey())
	return nil
}

func readKey(path string) (feed.SecretKey, error) {
	k, err := feed.ReadSecretKey(path, func() (string, error) { return askPassword(false) })
	if err != nil {
		return k, exitError{code: 1, msg: err.Error()}
	}
	return k, nil
}

// askPassword reads the password from $FALCONET_RELEASE_PASSWORD, the
// terminal (without echo, twice when confirm), or one line of stdin.
func askPassword(confirm bool) (string, error) {
	if pw, ok := os.LookupEnv(passwordEnv); ok {
		return pw, nil
	}
	fd := int(os.Stdin.Fd())
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil { // not a terminal
		line, err := bufio.NewReader(os.Stdin).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", err
		}
		return strings.TrimRight(line, "\r\n"), nil
	}
	noEcho := *old
	noEcho.Lflag &^= unix.ECHO
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &noEcho); err != nil {
		return "", err
	}
	defer unix.IoctlSetTermios(fd, unix.TCSETS, old)
	in := bufio.NewReader(os.Stdin)
	read := func(prompt string) (string, error) {
		fmt.Fprint(os.Stderr, prompt)
		line, err := in.ReadString('\n')
		fmt.Fprintln(os.Stderr)
		return strings.TrimRight(line, "\r\n"), err
	}
	pw, err := read("secret key password: ")
	if err != nil {
		return "", err
	}
	if confirm {
		again, err := read("again: ")
		if err != nil {
			return "", err
		}
		if again != pw {
			return "", exitError{code: 1, msg: "the passwords differ"}
		}
	}
	return pw, nil
}
