package feed

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strings"

	"aead.dev/minisign"
	"golang.org/x/crypto/blake2b"
	"golang.org/x/crypto/scrypt"
)

// Errors about keys.
var (
	ErrBadKeyFile  = errors.New("feed: not a minisign secret key")
	ErrBadPassword = errors.New("feed: wrong password for the secret key")
)

const (
	algEd       uint16 = 0x6445 // "Ed": Ed25519
	kdfNone     uint16 = 0x0000 // unencrypted secret key (minisign -W)
	kdfScrypt   uint16 = 0x6353 // "Sc"
	chkBlake2b  uint16 = 0x3242 // "B2"
	secKeyBytes        = 158    // 2+2+2+32+8+8 + 8+64+32
)

// Scrypt costs for encrypting a secret key. SensitiveCost is what the
// minisign command uses (about 1 GiB of memory, a few seconds);
// InteractiveCost is libsodium's interactive level, for tests.
var (
	SensitiveCost   = KeyCost{Ops: 33554432, Mem: 1073741824}
	InteractiveCost = KeyCost{Ops: 524288, Mem: 16777216}
)

// KeyCost is scrypt's cost (libsodium's opslimit and memlimit).
type KeyCost struct{ Ops, Mem uint64 }

// SecretKey is a minisign secret key: it signs manifests and artifacts.
type SecretKey struct {
	id   uint64
	priv ed25519.PrivateKey
}

// GenerateKey makes a new key pair.
func GenerateKey() (SecretKey, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return SecretKey{}, err
	}
	var id [8]byte
	if _, err := rand.Read(id[:]); err != nil {
		return SecretKey{}, err
	}
	return SecretKey{id: binary.LittleEndian.Uint64(id[:]), priv: priv}, nil
}

// ID is the key id (shown in hex by minisign).
func (k SecretKey) ID() uint64 { return k.id }

// PublicKey returns the public half in minisign's text form ("RW...").
func (k SecretKey) PublicKey() string {
	var b [42]byte
	binary.LittleEndian.PutUint16(b[0:], algEd)
	binary.LittleEndian.PutUint64(b[2:], k.id)
	copy(b[10:], k.priv.Public().(ed25519.PublicKey))
	return base64.StdEncoding.EncodeToString(b[:])
}

// PublicKeyFile is the public key file's content (minisign's .pub format).
func (k SecretKey) PublicKeyFile() []byte {
	return fmt.Appendf(nil, "untrusted comment: minisign public key %X\n%s\n", k.id, k.PublicKey())
}

// Marshal returns the secret key file's content. An empty password writes
// the key unencrypted (minisign -W); otherwise it is encrypted with scrypt
// at cost, as minisign does.
func (k SecretKey) Marshal(password string, cost KeyCost) ([]byte, error) {
	var b [secKeyBytes]byte
	binary.LittleEndian.PutUint16(b[0:], algEd)
	binary.LittleEndian.PutUint16(b[4:], chkBlake2b)
	plain := b[54:]
	binary.LittleEndian.PutUint64(plain[0:], k.id)
	copy(plain[8:72], k.priv)
	sum := keyChecksum(plain[:72])
	copy(plain[72:], sum[:])
	comment := "minisign secret key"
	if password == "" {
		binary.LittleEndian.PutUint16(b[2:], kdfNone)
		comment = "minisign unencrypted secret key"
	} else {
		binary.LittleEndian.PutUint16(b[2:], kdfScrypt)
		if _, err := rand.Read(b[6:38]); err != nil {
			return nil, err
		}
		binary.LittleEndian.PutUint64(b[38:], cost.Ops)
		binary.LittleEndian.PutUint64(b[46:], cost.Mem)
		if err := xorKeystream(password, b[6:38], cost, plain); err != nil {
			return nil, err
		}
	}
	return fmt.Appendf(nil, "untrusted comment: %s\n%s\n", comment, base64.StdEncoding.EncodeToString(b[:])), nil
}

// ParseSecretKey reads a secret key file's content. password is called
// only when the key is encrypted.
func ParseSecretKey(data []byte, password func() (string, error)) (SecretKey, error) {
	text := strings.TrimSpace(string(data))
	if i := strings.IndexByte(text, '\n'); i >= 0 && strings.HasPrefix(text, "untrusted comment:") {
		text = strings.TrimSpace(text[i+1:])
	}
	b, err := base64.StdEncoding.DecodeString(text)
	if err != nil || len(b) != secKeyBytes {
		return SecretKey{}, ErrBadKeyFile
	}
	if binary.LittleEndian.Uint16(b[0:]) != algEd || binary.LittleEndian.Uint16(b[4:]) != chkBlake2b {
		return SecretKey{}, fmt.Errorf("%w: unknown algorithm", ErrBadKeyFile)
	}
	plain := b[54:]
	switch binary.LittleEndian.Uint16(b[2:]) {
	case kdfNone:
	case kdfScrypt:
		if password == nil {
			return SecretKey{}, fmt.Errorf("%w: the key is encrypted and no password was given", ErrBadPassword)
		}
		pw, err := password()
		if err != nil {
			return SecretKey{}, err
		}
		cost := KeyCost{Ops: binary.LittleEndian.Uint64(b[38:]), Mem: binary.LittleEndian.Uint64(b[46:])}
		if cost.Ops > SensitiveCost.Ops || cost.Mem > SensitiveCost.Mem {
			return SecretKey{}, fmt.Errorf("%w: scrypt cost above minisign's limits", ErrBadKeyFile)
		}
		if err := xorKeystream(pw, b[6:38], cost, plain); err != nil {
			return SecretKey{}, err
		}
	default:
		return SecretKey{}, fmt.Errorf("%w: unknown key encryption", ErrBadKeyFile)
	}
	// minisign -W leaves the checksum of an unencrypted key zero.
	encrypted := binary.LittleEndian.Uint16(b[2:]) == kdfScrypt
	if sum := keyChecksum(plain[:72]); (encrypted || !allZero(plain[72:])) && subtle.ConstantTimeCompare(sum[:], plain[72:]) != 1 {
		if encrypted {
			return SecretKey{}, ErrBadPassword
		}
		return SecretKey{}, fmt.Errorf("%w: checksum mismatch", ErrBadKeyFile)
	}
	priv := ed25519.NewKeyFromSeed(plain[8:40])
	if subtle.ConstantTimeCompare(priv[32:], plain[40:72]) != 1 {
		return SecretKey{}, fmt.Errorf("%w: public half does not match the private key", ErrBadKeyFile)
	}
	return SecretKey{id: binary.LittleEndian.Uint64(plain[0:]), priv: priv}, nil
}

// ReadSecretKey reads and, if needed, decrypts a secret key file.
func ReadSecretKey(path string, password func() (string, error)) (SecretKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return SecretKey{}, err
	}
	k, err := ParseSecretKey(data, password)
	if err != nil {
		return SecretKey{}, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

func keyChecksum(idAndKey []byte) [32]byte {
	msg := make([]byte, 2+len(idAndKey))
	binary.LittleEndian.PutUint16(msg, algEd)
	copy(msg[2:], idAndKey)
	return blake2b.Sum256(msg)
}

// xorKeystream encrypts or decrypts the 104 bytes of key id, key and
// checksum in place, exactly as minisign does.
func xorKeystream(password string, salt []byte, cost KeyCost, buf []byte) error {
	n, r, p := scryptParams(cost.Ops, cost.Mem)
	ks, err := scrypt.Key([]byte(password), salt, n, r, p, len(buf))
	if err != nil {
		return err
	}
	for i := range buf {
		buf[i] ^= ks[i]
	}
	return nil
}

// scryptParams converts libsodium's opslimit and memlimit to scrypt's
// N, r, p (libsodium's pickparams, as minisign and aead.dev/minisign do).
func scryptParams(ops, mem uint64) (n, r, p int) {
	const minOps = 1 << 15
	const maxRP = 0x3fffffff
	ops = max(ops, minOps)
	r = 8
	if ops < mem/32 {
		p = 1
		maxN := ops / (4 * uint64(r))
		for i := 1; i < 63; i++ {
			if uint64(1)<<i > maxN/2 {
				return 1 << i, r, p
			}
		}
	}
	maxN := mem / (uint64(r) * 128)
	logN := 1
	for ; logN < 63; logN++ {
		if uint64(1)<<logN > maxN/2 {
			break
		}
	}
	maxRPv := (ops / 4) / (uint64(1) << logN)
	if maxRPv > maxRP {
		maxRPv = maxRP
	}
	return 1 << logN, r, int(maxRPv) / r
}

// ParsePublicKey parses a public key in minisign's text form ("RW...") or
// a whole .pub file.
func ParsePublicKey(s string) (minisign.PublicKey, error) {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = strings.TrimSpace(s[i+1:])
	}
	var pk minisign.PublicKey
	if err := pk.UnmarshalText([]byte(s)); err != nil {
		return pk, fmt.Errorf("feed: public key %q: %w", s, err)
	}
	return pk, nil
}

// Sign returns a minisign signature (text) of msg, pre-hashed with
// BLAKE2b-512 as the minisign command does by default.
func (k SecretKey) Sign(msg []byte, trustedComment string) []byte {
	h := blake2b.Sum512(msg)
	sig := ed25519.Sign(k.priv, h[:])
	s := minisign.Signature{
		Algorithm:        minisign.HashEdDSA,
		KeyID:            k.id,
		TrustedComment:   trustedComment,
		UntrustedComment: fmt.Sprintf("signature from falconet secret key %X", k.id),
	}
	copy(s.Signature[:], sig)
	copy(s.CommentSignature[:], ed25519.Sign(k.priv, append(sig, trustedComment...)))
	text, err := s.MarshalText()
	if err != nil {
		panic(err) // the algorithm is set above
	}
	return append(text, '\n')
}

// Keyring is a set of trusted public keys.
type Keyring []minisign.PublicKey

// ParseKeyring parses public keys in minisign's text form.
func ParseKeyring(keys []string) (Keyring, error) {
	kr := make(Keyring, 0, len(keys))
	for _, s := range keys {
		pk, err := ParsePublicKey(s)
		if err != nil {
			return nil, err
		}
		kr = append(kr, pk)
	}
	return kr, nil
}

// ErrBadSignature is returned when no trusted key verifies a signature.
var ErrBadSignature = errors.New("feed: signature not valid for any trusted key")

// Verify checks sig (minisign text) over msg against the keyring and
// returns the key that verified it.
func (kr Keyring) Verify(msg, sig []byte) (minisign.PublicKey, error) {
	var s minisign.Signature
	if err := s.UnmarshalText(sig); err != nil {
		return minisign.PublicKey{}, fmt.Errorf("%w: unreadable signature: %v", ErrBadSignature, err)
	}
	for _, pk := range kr {
		if pk.ID() == s.KeyID && minisign.Verify(pk, msg, sig) {
			return pk, nil
		}
	}
	return minisign.PublicKey{}, fmt.Errorf("%w (signed by key %X)", ErrBadSignature, s.KeyID)
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
