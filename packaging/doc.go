// Package packaging holds what turns falconet's binaries into deb and rpm
// packages: the hardened systemd units (systemd/), the maintainer scripts
// (scripts/deb, scripts/rpm), the default configuration files (config/) and
// the package tests. The package definitions themselves live in
// .goreleaser.yaml at the top of the repository; pkgbuild/ builds them with
// nfpm where goreleaser is not installed.
//
// The package tests (packaging_test.go, run by `make test-packages` as root)
// build the packages from .goreleaser.yaml, install them with
// `dpkg --root` into a scratch root, upgrade, remove and purge them there,
// inspect the rpms with rpm -qp, and run systemd-analyze verify on every
// unit. Nothing on the host is touched.
package packaging
