// Package pkgbuild builds falconet's deb and rpm packages from
// .goreleaser.yaml without goreleaser: it reads the file's builds, nfpms and
// snapshot sections, builds the binaries with the same go flags and ldflags,
// and turns each nfpms entry into an nfpm configuration that the nfpm command
// (the library goreleaser packages with) turns into packages.
//
// Guarantees:
//   - One definition: everything a package contains comes from
//     .goreleaser.yaml. A key pkgbuild does not know how to translate is an
//     error naming the key, never silently dropped, so the goreleaser path
//     and this one cannot drift apart unnoticed.
//   - Versions as goreleaser makes them: the tag's version when HEAD is
//     tagged (v1.2.3 → 1.2.3), otherwise snapshot.version_template rendered
//     with the last tag's version (0.0.0 without tags).
//   - Templates ({{ .Version }}, {{ .ShortCommit }}, incpatch, ...) are
//     rendered with the fields listed in [TemplateData]; an unknown field is
//     an error.
//
// What it does not do: archives, checksums, signing, publishing, or any
// goreleaser section besides builds, nfpms and snapshot (the other sections
// are ignored, as they produce no package). Packages are built by the nfpm
// command, which must be on PATH or in $GOPATH/bin.
package pkgbuild
