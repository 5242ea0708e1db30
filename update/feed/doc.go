// Package feed is the release feed's format: minisign keys, the signed
// manifest, artifact signatures, version order and staged-rollout
// eligibility. It is shared by the release tool (falconet release), the
// agent's updater (package update) and the relay's feed mirror.
//
// # Layout
//
// A feed is a plain directory any web server can serve:
//
//	manifest.json          the releases, newest last (JSON)
//	manifest.json.minisig  minisign signature of manifest.json
//	<version>/falconet-agent-<os>-<arch>          an artifact
//	<version>/falconet-agent-<os>-<arch>.minisig  its minisign signature
//
// Each artifact's size, sha256 and signature text are also inside the
// manifest, so a verified manifest pins every byte an agent downloads.
//
// # Keys and signatures
//
// Keys and signatures use minisign's formats, so the Debian `minisign`
// command can sign a feed (`minisign -S`) and verify one (`minisign -V`),
// and keys it generates (`minisign -G`, encrypted or with -W) sign with
// `falconet release`. Signatures are made pre-hashed (BLAKE2b-512), as
// minisign does by default; verification accepts both kinds.
//
// # Guarantees
//
// Verify accepts a manifest only when its signature checks against one of
// the trusted public keys. Eligible is deterministic: the same agent id and
// version always give the same answer, and raising a release's percentage
// only adds agents.
//
// # Not done here
//
// Downloading, applying and health-checking releases is package update's
// job; this package never touches the running binary.
package feed
