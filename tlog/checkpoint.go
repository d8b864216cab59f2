package tlog

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/kephs/kep/store"
)

// Checkpoint is a signed statement of the log's size and root hash, with an
// RFC 3161 time stamp over the signed note.
type Checkpoint struct {
	Size      int64
	Root      Hash
	Note      []byte // C2SP signed note whose body is a C2SP tlog-checkpoint
	CreatedAt time.Time
	TST       []byte // DER TimeStampResp (granted) over SHA-256(Note)
	TSTTime   time.Time
}

// Stamper obtains an RFC 3161 time-stamp token over data.
type Stamper interface {
	Stamp(ctx context.Context, data []byte) (token []byte, at time.Time, err error)
}

// FormatCheckpoint returns a C2SP tlog-checkpoint body:
//
//	<origin>\n<size>\n<base64 root hash>\n
func FormatCheckpoint(origin string, size int64, root Hash) []byte {
	return fmt.Appendf(nil, "%s\n%d\n%s\n", origin, size, base64.StdEncoding.EncodeToString(root[:]))
}

// Link is what a checkpoint states about the one before it, in an
// extension line of its body (C2SP tlog-checkpoint allows lines after the
// root hash; verifiers that do not know them ignore them):
//
//	kep-previous <size> <later time stamps>
//
// Size is the largest checkpoint smaller than this one when it was made
// (0 for the first), Stamps the number of later time stamps it had then
// (Retimestamp stamps only the latest checkpoint, so that number is final
// once a newer one exists). Signed with the note, the links chain the
// checkpoints and their stamps: one removed from the store is named by the
// next (issue 9.4). Only the latest cannot be, from the store alone: an
// outside auditor's saved checkpoint shows it (AuditOptions.Against).
type Link struct {
	Size   int64
	Stamps int64
}

const linkPrefix = "kep-previous "

// FormatLinkedCheckpoint is FormatCheckpoint with the link line.
func FormatLinkedCheckpoint(origin string, size int64, root Hash, l Link) []byte {
	return fmt.Appendf(FormatCheckpoint(origin, size, root), "%s%d %d\n", linkPrefix, l.Size, l.Stamps)
}

// CheckpointLink returns the link of a checkpoint body (or signed note),
// and false for a checkpoint made before links existed.
func CheckpointLink(body []byte) (Link, bool, error) {
	lines := strings.Split(string(NoteBody(body)), "\n")
	for _, line := range lines[min(3, len(lines)):] {
		rest, ok := strings.CutPrefix(line, linkPrefix)
		if !ok {
			continue
		}
		a, b, _ := strings.Cut(rest, " ")
		size, err1 := strconv.ParseInt(a, 10, 64)
		stamps, err2 := strconv.ParseInt(b, 10, 64)
		if err1 != nil || err2 != nil || size < 0 || stamps < 0 || strconv.FormatInt(size, 10) != a || strconv.FormatInt(stamps, 10) != b {
			return Link{}, false, fmt.Errorf("checkpoint: bad link line %q", line)
		}
		return Link{size, stamps}, true, nil
	}
	return Link{}, false, nil
}

// previous returns the link of a new checkpoint of size: the largest
// checkpoint below it and its number of later time stamps.
func previous(ctx context.Context, q store.Querier, size int64) (Link, error) {
	var l Link
	err := q.QueryRow(ctx, `SELECT COALESCE(MAX(size), 0) FROM checkpoints WHERE size < ?`, size).Scan(&l.Size)
	if err == nil && l.Size > 0 {
		err = q.QueryRow(ctx, `SELECT COUNT(*) FROM checkpoint_stamps WHERE size = ?`, l.Size).Scan(&l.Stamps)
	}
	if err != nil {
		return Link{}, fmt.Errorf("tlog: read the previous checkpoint: %w", err)
	}
	return l, nil
}

// ParseCheckpoint reads a C2SP tlog-checkpoint body (extension lines after
// the third are allowed and ignored).
func ParseCheckpoint(body []byte) (origin string, size int64, root Hash, err error) {
	lines := strings.Split(string(body), "\n")
	if len(lines) < 4 || lines[len(lines)-1] != "" {
		return "", 0, Hash{}, errors.New("checkpoint: want origin, size and root hash lines, each ending in a newline")
	}
	origin = lines[0]
	if origin == "" {
		return "", 0, Hash{}, errors.New("checkpoint: empty origin line")
	}
	size, err = strconv.ParseInt(lines[1], 10, 64)
	if err != nil || size < 0 || strconv.FormatInt(size, 10) != lines[1] {
		return "", 0, Hash{}, fmt.Errorf("checkpoint: bad tree size %q", lines[1])
	}
	h, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(h) != len(root) || base64.StdEncoding.EncodeToString(h) != lines[2] {
		return "", 0, Hash{}, fmt.Errorf("checkpoint: bad root hash %q", lines[2])
	}
	copy(root[:], h)
	return origin, size, root, nil
}

// OpenCheckpoint verifies a signed checkpoint note with the log's verifier
// keys and returns its contents. vkey is a key set: one or more verifier
// keys (note format), one a line, as after a rotation (the current key and
// the retired ones). The note names the key that signed it (C2SP
// signed-note: key name and the 4-byte key hash on each signature line),
// and the key of that name and hash is the one used; every key's name must
// be the checkpoint's origin.
func OpenCheckpoint(signed []byte, vkey string) (origin string, size int64, root Hash, err error) {
	keys := SplitKeys(vkey)
	if len(keys) == 0 {
		return "", 0, Hash{}, errors.New("checkpoint: no log verifier key given")
	}
	var vs []note.Verifier
	for _, k := range keys {
		v, err := note.NewVerifier(k)
		if err != nil {
			return "", 0, Hash{}, fmt.Errorf("checkpoint: bad log verifier key: %w", err)
		}
		if len(vs) > 0 && v.Name() != vs[0].Name() {
			return "", 0, Hash{}, fmt.Errorf("checkpoint: the log keys are named %q and %q; a log's keys all bear its origin", vs[0].Name(), v.Name())
		}
		vs = append(vs, v)
	}
	n, err := note.Open(signed, note.VerifierList(vs...))
	if err == nil {
		err = canonicalSignatures(signed)
	}
	if err != nil {
		return "", 0, Hash{}, fmt.Errorf("checkpoint signature: %w", err)
	}
	origin, size, root, err = ParseCheckpoint([]byte(n.Text))
	if err != nil {
		return "", 0, Hash{}, err
	}
	if origin != vs[0].Name() {
		return "", 0, Hash{}, fmt.Errorf("checkpoint: origin %q is not the log key's name %q", origin, vs[0].Name())
	}
	return origin, size, root, nil
}

// SplitKeys returns the verifier keys of a key set: the non-empty lines of
// text, trimmed. A single key is a key set of one.
func SplitKeys(set string) []string {
	var out []string
	for _, line := range strings.Split(set, "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			out = append(out, line)
		}
	}
	return out
}

// KeyFor returns the key of the set that signed a checkpoint note: the one
// whose name and key hash a signature line of the note names. The note's
// signature itself is not checked here (OpenCheckpoint does).
func KeyFor(signed []byte, set string) (string, error) {
	keys := SplitKeys(set)
	i := bytes.LastIndex(signed, []byte("\n\n"))
	if i < 0 {
		return "", errors.New("checkpoint: malformed note")
	}
	for _, line := range strings.Split(strings.TrimSuffix(string(signed[i+2:]), "\n"), "\n") {
		name, b64, _ := strings.Cut(strings.TrimPrefix(line, "— "), " ")
		sig, err := base64.StdEncoding.DecodeString(b64)
		if err != nil || len(sig) < 4 {
			continue
		}
		for _, k := range keys {
			v, err := note.NewVerifier(k)
			if err == nil && v.Name() == name && v.KeyHash() == binary.BigEndian.Uint32(sig) {
				return k, nil
			}
		}
	}
	return "", fmt.Errorf("checkpoint: signed by none of the %d log keys given (a retired key missing from the key set?)", len(keys))
}

// canonicalSignatures requires every signature line of a signed note to be
// in canonical standard base64 (padding bits zero): note.Open decodes
// leniently, so a changed padding bit would otherwise leave the note
// different and still verified.
func canonicalSignatures(signed []byte) error {
	i := bytes.LastIndex(signed, []byte("\n\n"))
	if i < 0 {
		return errors.New("malformed note")
	}
	for _, line := range strings.Split(strings.TrimSuffix(string(signed[i+2:]), "\n"), "\n") {
		_, b64, _ := strings.Cut(strings.TrimPrefix(line, "— "), " ")
		sig, err := base64.StdEncoding.DecodeString(b64)
		if err != nil || base64.StdEncoding.EncodeToString(sig) != b64 {
			return fmt.Errorf("signature %q is not in canonical base64", b64)
		}
	}
	return nil
}

// GenerateLogKey makes an Ed25519 note key named origin and returns the
// signer key and the verifier key (both in the sumdb/note text format).
func GenerateLogKey(origin string) (skey, vkey string, err error) {
	return note.GenerateKey(rand.Reader, origin)
}

// VerifierKey derives the verifier key from a signer key.
func VerifierKey(skey string) (string, error) {
	// PRIVATE+KEY+<name>+<hash>+<base64(0x01 ‖ seed)>
	parts := strings.SplitN(skey, "+", 5)
	if len(parts) != 5 || parts[0] != "PRIVATE" || parts[1] != "KEY" {
		return "", errors.New("tlog: malformed log signer key")
	}
	b, err := base64.StdEncoding.DecodeString(parts[4])
	if err != nil || len(b) != 1+ed25519.SeedSize || b[0] != 1 {
		return "", errors.New("tlog: log signer key is not an Ed25519 key")
	}
	pub := ed25519.NewKeyFromSeed(b[1:]).Public().(ed25519.PublicKey)
	return note.NewEd25519VerifierKey(parts[2], pub)
}

// LoadSigner reads a log key file and returns its signer and the log's
// key set. The file holds the signer key on its first line; after a
// rotation (`kep keys rotate --which log`) the verifier keys of the
// retired log keys follow, one a line, so that checkpoints they signed
// still verify. The key set is the current verifier key first, then the
// retired ones.
func LoadSigner(path string) (note.Signer, string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, "", err
	}
	lines := SplitKeys(string(b))
	if len(lines) == 0 {
		return nil, "", fmt.Errorf("%s: no log signer key", path)
	}
	skey := lines[0]
	s, err := note.NewSigner(skey)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", path, err)
	}
	vkey, err := VerifierKey(skey)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", path, err)
	}
	set := []string{vkey}
	for _, k := range lines[1:] {
		v, err := note.NewVerifier(k)
		if err != nil {
			return nil, "", fmt.Errorf("%s: a retired log key line is not a verifier key: %w", path, err)
		}
		if v.Name() != s.Name() {
			return nil, "", fmt.Errorf("%s: retired log key named %q, the signer %q", path, v.Name(), s.Name())
		}
		if k != vkey {
			set = append(set, k)
		}
	}
	return s, strings.Join(set, "\n"), nil
}

// Checkpointer issues checkpoints of one log.
type Checkpointer struct {
	DB *store.DB
	// Log, when set, carries the checkpoint's row through its group commit,
	// so that the checkpointer never waits on the database lock behind the
	// sequencer.
	Log     *Log
	Origin  string
	Signer  note.Signer
	Stamper Stamper
	Now     func() time.Time
}

// Make issues a checkpoint for the first size entries: root hash, signed
// note, time stamp, stored. A checkpoint of that size that exists already
// is returned as it is.
func (c *Checkpointer) Make(ctx context.Context, size int64) (*Checkpoint, error) {
	if size < 1 {
		return nil, errors.New("tlog: no checkpoint of an empty log")
	}
	if cp, err := GetCheckpoint(ctx, c.DB.Q(), size); err == nil {
		return cp, nil
	}
	root, err := TreeHash(ctx, c.DB.Q(), size)
	if err != nil {
		return nil, err
	}
	if c.Signer.Name() != c.Origin {
		return nil, fmt.Errorf("tlog: log key is named %q, origin is %q", c.Signer.Name(), c.Origin)
	}
	link, err := previous(ctx, c.DB.Q(), size)
	if err != nil {
		return nil, err
	}
	signed, err := note.Sign(&note.Note{Text: string(FormatLinkedCheckpoint(c.Origin, size, root, link))}, c.Signer)
	if err != nil {
		return nil, fmt.Errorf("tlog: sign checkpoint: %w", err)
	}
	tst, at, err := c.Stamper.Stamp(ctx, signed)
	if err != nil {
		return nil, fmt.Errorf("tlog: time-stamp checkpoint: %w", err)
	}
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	cp := &Checkpoint{Size: size, Root: root, Note: signed, CreatedAt: now().UTC(), TST: tst, TSTTime: at.UTC()}
	insert := func(ctx context.Context, q store.Querier) error {
		_, err := q.Exec(ctx, `INSERT INTO checkpoints (size, root, note, created_at, tst, tst_time) VALUES (?, ?, ?, ?, ?, ?)`,
			cp.Size, cp.Root[:], cp.Note, store.Millis(cp.CreatedAt), cp.TST, store.Millis(cp.TSTTime))
		return err
	}
	if c.Log != nil {
		err = c.Log.Write(ctx, func(ctx context.Context, tx *store.Tx) error { return insert(ctx, tx) })
	} else {
		err = insert(ctx, c.DB.Q())
	}
	if errors.Is(err, store.ErrConflict) { // another node made it first
		return GetCheckpoint(ctx, c.DB.Q(), size)
	}
	if err != nil {
		return nil, err
	}
	return cp, nil
}

// Run issues a checkpoint every interval when the log grew, until ctx ends.
// notify, when not nil, is called with each new checkpoint.
func (c *Checkpointer) Run(ctx context.Context, l *Log, interval time.Duration, notify func(*Checkpoint)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cp, err := c.Catchup(ctx, l.Size())
		if err != nil {
			continue // retried at the next tick
		}
		if cp != nil && notify != nil {
			notify(cp)
		}
	}
}

// Catchup issues a checkpoint of size when the latest one is smaller, and
// returns it (nil when nothing grew).
func (c *Checkpointer) Catchup(ctx context.Context, size int64) (*Checkpoint, error) {
	if size == 0 {
		return nil, nil
	}
	latest, err := LatestCheckpoint(ctx, c.DB.Q())
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	if latest != nil && latest.Size >= size {
		return nil, nil
	}
	return c.Make(ctx, size)
}

// Retimestamp adds a fresh time stamp over the latest checkpoint.
func (c *Checkpointer) Retimestamp(ctx context.Context) (*Checkpoint, time.Time, error) {
	cp, err := LatestCheckpoint(ctx, c.DB.Q())
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("tlog: no checkpoint to time-stamp: %w", err)
	}
	tst, at, err := c.Stamper.Stamp(ctx, cp.Note)
	if err != nil {
		return nil, time.Time{}, err
	}
	_, err = c.DB.Q().Exec(ctx, `INSERT INTO checkpoint_stamps (size, tst, tst_time) VALUES (?, ?, ?)`, cp.Size, tst, store.Millis(at))
	return cp, at, err
}

const cpCols = `size, root, note, created_at, tst, tst_time FROM checkpoints`

func scanCheckpoint(s interface{ Scan(...any) error }) (*Checkpoint, error) {
	var cp Checkpoint
	var root []byte
	var created, tstTime int64
	if err := s.Scan(&cp.Size, &root, &cp.Note, &created, &cp.TST, &tstTime); err != nil {
		return nil, store.MapErr(err)
	}
	if len(root) != len(cp.Root) {
		return nil, fmt.Errorf("tlog: checkpoint %d has a %d-byte root", cp.Size, len(root))
	}
	copy(cp.Root[:], root)
	cp.CreatedAt, cp.TSTTime = store.FromMillis(created), store.FromMillis(tstTime)
	return &cp, nil
}

// LatestCheckpoint returns the largest checkpoint.
func LatestCheckpoint(ctx context.Context, q store.Querier) (*Checkpoint, error) {
	return scanCheckpoint(q.QueryRow(ctx, `SELECT `+cpCols+` ORDER BY size DESC LIMIT 1`))
}

// GetCheckpoint returns the checkpoint of a size.
func GetCheckpoint(ctx context.Context, q store.Querier, size int64) (*Checkpoint, error) {
	return scanCheckpoint(q.QueryRow(ctx, `SELECT `+cpCols+` WHERE size = ?`, size))
}

// CoveringCheckpoint returns the first checkpoint that includes leaf index
// seq, or ErrNotFound while none does yet.
func CoveringCheckpoint(ctx context.Context, q store.Querier, seq int64) (*Checkpoint, error) {
	return scanCheckpoint(q.QueryRow(ctx, `SELECT `+cpCols+` WHERE size > ? ORDER BY size LIMIT 1`, seq))
}

// ListCheckpoints returns every checkpoint, smallest first.
func ListCheckpoints(ctx context.Context, q store.Querier) ([]*Checkpoint, error) {
	rows, err := q.Query(ctx, `SELECT `+cpCols+` ORDER BY size`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*Checkpoint
	for rows.Next() {
		cp, err := scanCheckpoint(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, cp)
	}
	return out, rows.Err()
}

// Stamps returns the later time stamps of a checkpoint (retimestamp), oldest first.
func Stamps(ctx context.Context, q store.Querier, size int64) ([][]byte, error) {
	rows, err := q.Query(ctx, `SELECT tst FROM checkpoint_stamps WHERE size = ? ORDER BY id`, size)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out [][]byte
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, rows.Err()
}

// NoteBody returns the text of a signed note without its signatures.
func NoteBody(signed []byte) []byte {
	if i := bytes.LastIndex(signed, []byte("\n\n")); i >= 0 {
		return signed[:i+1]
	}
	return signed
}
