package evidence

import (
	"bytes"
	"compress/flate"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/kephs/kep/store"
)

// Stored evidence is compressed: a provider keeps billions of evidences for
// 20 years, so bytes at rest matter. Every evidence repeats the same element
// names, namespaces, algorithm URIs and — the largest part — the provider's
// certificate, so each row is compressed with a dictionary made of sample
// evidences signed with the same certificate: Zstandard (RFC 8878) with a
// raw-content dictionary, which is prepared once and then costs about 10 µs
// an evidence (raw DEFLATE, RFC 1951, with a preset dictionary, is also
// read: it costs three times as much, the dictionary being hashed again
// for every row). The dictionary is stored once (evidence_dicts, with its
// codec) and its id, derived from the codec and its SHA-256, is the row's
// format; format 0 is the document as it is. A dictionary is never changed
// or removed: rows need it for as long as they are kept.

// Dict is a compression dictionary of stored evidence.
type Dict struct {
	ID    int64
	Codec string // CodecZstd or CodecDeflate
	Data  []byte
}

// Codecs of stored evidence.
const (
	CodecZstd    = "zstd"
	CodecDeflate = "deflate"
)

// FormatRaw marks a row stored without compression.
const FormatRaw = 0

// dictID derives a dictionary's id from its codec and bytes: the first 8
// bytes of their SHA-256, never 0 (and below 2^31 as zstd wants its
// dictionary ids).
func dictID(codec string, data []byte) int64 {
	sum := sha256.Sum256(append([]byte(codec+"\x00"), data...))
	id := int64(binary.BigEndian.Uint32(sum[:4]) >> 1)
	if id == 0 {
		id = 1
	}
	return id
}

// dicts caches dictionaries by id. Ids are content hashes, so the cache is
// right across databases.
var dicts sync.Map // int64 → *Dict

// EnsureDict returns the dictionary for evidence signed by s, making and
// storing it the first time the certificate is used.
func EnsureDict(ctx context.Context, db *store.DB, s *Signer) (*Dict, error) {
	sum := sha256.Sum256(s.Certificate().Raw)
	fp := hex.EncodeToString(sum[:])
	var d Dict
	err := db.Q().QueryRow(ctx, `SELECT id, codec, dict FROM evidence_dicts WHERE cert = ? AND codec = ? ORDER BY created_at LIMIT 1`, fp, CodecZstd).Scan(&d.ID, &d.Codec, &d.Data)
	if err == nil {
		dicts.Store(d.ID, &d)
		return &d, nil
	}
	if !errors.Is(store.MapErr(err), store.ErrNotFound) {
		return nil, err
	}
	data, err := sampleDictionary(s)
	if err != nil {
		return nil, err
	}
	d = Dict{ID: dictID(CodecZstd, data), Codec: CodecZstd, Data: data}
	_, err = db.Q().Exec(ctx, `INSERT INTO evidence_dicts (id, cert, codec, dict, created_at) VALUES (?, ?, ?, ?, ?)`, d.ID, fp, d.Codec, d.Data, store.Millis(time.Now()))
	if err != nil && !errors.Is(err, store.ErrConflict) {
		return nil, err
	}
	dicts.Store(d.ID, &d)
	return &d, nil
}

// sampleDictionary signs one sample evidence of the most frequent kinds. The
// most frequent material goes last: DEFLATE finds matches in the last 32 KB
// of the dictionary, nearer is cheaper.
func sampleDictionary(s *Signer) ([]byte, error) {
	t := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	sample := func(c Code) *Evidence {
		e := &Evidence{
			ID: "01900000-0000-7000-8000-000000000000", Code: c, EventTime: t, SubmissionTime: t,
			IssuerPolicyID: "urn:kep:tr:policy:hs01.kep.tr:evidence:1",
			Issuer:         Issuer{Name: "HS01 KEP", Domain: "hs01.kep.tr", Country: "TR"},
			Sender:         Party{Address: "ayse.yilmaz@hs01.kep.tr", Identity: "TCKN:10000000146", Name: "Ayşe Yılmaz"},
			Recipients:     []Party{{Address: "mehmet.ozturk@hs01.kep.tr", Identity: "TCKN:10000000078", Name: "Mehmet Öztürk"}},
			Message: Message{MessageID: "<0190@client.example>", IletiID: "01900000-0000-7000-8000-000000000000", IletiTip: IletiTipStandart,
				DigestAlgorithm: DigestSHA256, Digest: make([]byte, 32), Size: 10240},
			RelatedEvidence: "01900000-0000-7000-8000-000000000000",
		}
		if c == Accepted || c == Rejected {
			e.SenderAuthentication = Authentication{Method: AuthSMTPCMS, Time: t}
		}
		switch c {
		case Rejected:
			e.Reasons = []Reason{ReasonNotSigned()}
		case NotDelivered:
			e.Reasons = []Reason{ReasonMailboxFull()}
		case DeemedRead:
			e.Reasons = []Reason{ReasonDeemedReadStandart24h()}
		}
		return e
	}
	var out []byte
	// Two samples (about 12 KB): the dictionary is hashed again for every
	// evidence compressed, so it is kept to what earns its cost.
	for _, c := range []Code{Accepted, Delivered} {
		doc, err := s.Sign(sample(c))
		if err != nil {
			return nil, fmt.Errorf("evidence: make the storage dictionary: %w", err)
		}
		out = append(out, doc...)
	}
	return out, nil
}

// coders are the prepared encoders and decoders of each dictionary.
var coders sync.Map // dict id → *coder

type coder struct {
	once sync.Once
	enc  *zstd.Encoder
	dec  *zstd.Decoder
	err  error
	// deflate
	writers sync.Pool
}

func coderFor(d *Dict) (*coder, error) {
	v, _ := coders.LoadOrStore(d.ID, &coder{})
	c := v.(*coder)
	c.once.Do(func() {
		switch d.Codec {
		case CodecZstd:
			if c.enc, c.err = zstd.NewWriter(nil, zstd.WithEncoderDictRaw(uint32(d.ID), d.Data), zstd.WithEncoderLevel(zstd.SpeedFastest),
				zstd.WithEncoderConcurrency(1), zstd.WithEncoderCRC(false)); c.err != nil {
				return
			}
			c.dec, c.err = zstd.NewReader(nil, zstd.WithDecoderDictRaw(uint32(d.ID), d.Data), zstd.WithDecoderConcurrency(0),
				zstd.WithDecoderMaxMemory(maxDocument))
		case CodecDeflate:
			c.writers.New = func() any {
				w, _ := flate.NewWriterDict(io.Discard, 3, d.Data)
				return w
			}
		default:
			c.err = fmt.Errorf("evidence: unknown storage codec %q", d.Codec)
		}
	})
	return c, c.err
}

// Encode returns the stored form of a signed evidence document.
func Encode(doc []byte, d *Dict) (format int64, data []byte) {
	if d == nil {
		return FormatRaw, doc
	}
	c, err := coderFor(d)
	if err != nil {
		return FormatRaw, doc
	}
	if d.Codec == CodecZstd {
		return d.ID, c.enc.EncodeAll(doc, make([]byte, 0, len(doc)/6))
	}
	var buf bytes.Buffer
	w := c.writers.Get().(*flate.Writer)
	w.Reset(&buf)
	w.Write(doc)
	err = w.Close()
	c.writers.Put(w)
	if err != nil {
		return FormatRaw, doc
	}
	return d.ID, buf.Bytes()
}

// maxDocument bounds a decoded evidence document.
const maxDocument = 1 << 20

// Decode returns the signed evidence document from its stored form,
// reading the dictionary from q the first time it is needed.
func Decode(ctx context.Context, q store.Querier, format int64, data []byte) ([]byte, error) {
	if format == FormatRaw {
		return data, nil
	}
	v, ok := dicts.Load(format)
	if !ok {
		var d Dict
		if err := q.QueryRow(ctx, `SELECT id, codec, dict FROM evidence_dicts WHERE id = ?`, format).Scan(&d.ID, &d.Codec, &d.Data); err != nil {
			return nil, fmt.Errorf("evidence: stored with dictionary %d, which the store does not have: %w", format, store.MapErr(err))
		}
		if dictID(d.Codec, d.Data) != format {
			return nil, fmt.Errorf("evidence: dictionary %d is damaged", format)
		}
		dicts.Store(format, &d)
		v = &d
	}
	d := v.(*Dict)
	c, err := coderFor(d)
	if err != nil {
		return nil, err
	}
	var out []byte
	if d.Codec == CodecZstd {
		out, err = c.dec.DecodeAll(data, nil)
	} else {
		r := flate.NewReaderDict(bytes.NewReader(data), d.Data)
		out, err = io.ReadAll(io.LimitReader(r, maxDocument+1))
		r.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("evidence: stored evidence is damaged: %w", err)
	}
	if len(out) > maxDocument {
		return nil, errors.New("evidence: stored evidence is too large")
	}
	return out, nil
}
