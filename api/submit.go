package api

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/mail"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kephs/kep/evidence"
	"github.com/kephs/kep/submission"
)

// MaxBulk is the most messages one bulk call carries.
const MaxBulk = 1000

// bulkWorkers is how many messages of one bulk call go through the access
// point at once: acceptance commits in groups (tlog group commit), so a
// few at a time fill each group.
const bulkWorkers = 16

// acceptedJSON is an accepted message.
type acceptedJSON struct {
	MessageID  int64             `json:"message_id"`
	EvidenceID string            `json:"evidence_id"` // the acceptance evidence (10)
	IletiID    string            `json:"ileti_id"`
	HeaderID   string            `json:"header_id,omitempty"`
	Recipients []string          `json:"recipients"`
	Size       int64             `json:"size"`
	SHA256     string            `json:"sha256"`
	AcceptedAt time.Time         `json:"accepted_at"`
	Replayed   bool              `json:"replayed,omitempty"` // accepted earlier under the same idempotency key: nothing sent now
	Links      map[string]string `json:"links"`
}

func acceptedOf(a *submission.Accepted) *acceptedJSON {
	ref := "/api/v1/messages/" + strconv.FormatInt(a.MessageID, 10)
	return &acceptedJSON{MessageID: a.MessageID, EvidenceID: a.EvidenceID, IletiID: a.IletiID, HeaderID: a.HeaderID, Recipients: a.Recipients,
		Size: a.Size, SHA256: hex.EncodeToString(a.Digest[:]), AcceptedAt: a.At, Replayed: a.Replayed,
		Links: map[string]string{"status": ref + "/status", "evidence": ref + "/evidence", "original": ref + "/original",
			"acceptance_bundle": "/api/v1/evidence/" + a.EvidenceID + "/bundle"}}
}

// envelope takes the envelope from the message's own header: the sender
// from From, the recipients from To and Cc (the access point requires
// exactly these). A header that cannot be read gives an empty envelope,
// which the access point refuses with the reason.
func envelope(data []byte) (from string, rcpts []string) {
	m, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		return "", nil
	}
	if l, err := m.Header.AddressList("From"); err == nil && len(l) > 0 {
		from = l[0].Address
	}
	for _, f := range []string{"To", "Cc"} {
		if m.Header.Get(f) == "" {
			continue
		}
		l, _ := m.Header.AddressList(f)
		for _, a := range l {
			rcpts = append(rcpts, a.Address)
		}
	}
	return from, rcpts
}

// submit runs one message through the access point, as the token's
// principal. It runs to its end even when the client goes away: a
// message whose acceptance began is accepted or refused, never half.
func (c *call) submit(data []byte, key string) (*submission.Accepted, *submission.Refusal) {
	from, rcpts := envelope(data)
	return c.s.Access.SubmitRequest(context.WithoutCancel(c.ctx), &submission.Request{
		Principal: c.p, From: from, Recipients: rcpts, Data: data, AuthMethod: evidence.AuthAPIToken, AuthTime: c.s.now(),
		Logger: c.s.log().With("server", "api", "request", c.id), Tag: c.id, IdempotencyKey: key,
	})
}

// submitOne: POST /api/v1/messages, the body the signed message itself.
func (s *Server) submitOne(c *call) error {
	// Read up to one byte past the limit, as SMTP's DATA does: a longer
	// message then goes to the access point with the bytes read, which
	// refuses it for its size with rejection evidence (11) naming its
	// sender and recipients from the header, exactly as over SMTP; the
	// rest of the body is never read (the connection is closed).
	limit := s.Access.MaxMessageBytes()
	data, err := io.ReadAll(io.LimitReader(c.r.Body, limit+1))
	if err != nil {
		return problemf(http.StatusBadRequest, "body-unreadable", "The body could not be read", "İstek gövdesi okunamadı; yeniden gönderin.", "The request body could not be read; send it again.")
	}
	key := strings.TrimSpace(c.r.Header.Get("Idempotency-Key"))
	acc, ref := c.submit(data, key)
	if ref != nil {
		return ref
	}
	status := http.StatusCreated
	if acc.Replayed {
		status = http.StatusOK
	}
	c.w.Header().Set("Location", "/api/v1/messages/"+strconv.FormatInt(acc.MessageID, 10)+"/status")
	return c.json(status, acceptedOf(acc))
}

type bulkRequest struct {
	Items []bulkItem `json:"items"`
}

type bulkItem struct {
	IdempotencyKey string `json:"idempotency_key"`
	Message        []byte `json:"message"` // base64 in JSON
}

// bulkResult is one item's outcome.
type bulkResult struct {
	Index          int           `json:"index"`
	IdempotencyKey string        `json:"idempotency_key"`
	Status         int           `json:"status"` // as the single call would answer: 201, 200 (replayed), or the problem's
	Accepted       *acceptedJSON `json:"accepted,omitempty"`
	Problem        *Problem      `json:"problem,omitempty"`
}

type bulkResponse struct {
	Accepted int          `json:"accepted"` // newly accepted
	Replayed int          `json:"replayed"` // accepted by an earlier call under the same key
	Refused  int          `json:"refused"`  // refused for good (rejection evidence issued where the message was checked)
	Failed   int          `json:"failed"`   // not accepted now: retry these with the same keys
	Items    []bulkResult `json:"items"`
}

// submitBulk: POST /api/v1/messages/bulk. Each item carries its own
// idempotency key; items succeed and fail one by one.
func (s *Server) submitBulk(c *call) error {
	var req bulkRequest
	if err := c.readJSON(&req, int64(MaxBulk)*(s.Access.MaxMessageBytes()*4/3+1024)); err != nil {
		return err
	}
	if len(req.Items) == 0 || len(req.Items) > MaxBulk {
		return problemf(http.StatusBadRequest, "bulk-size", "Wrong number of items",
			fmt.Sprintf("Toplu gönderim 1 ile %d arasında ileti taşır (%d verildi).", MaxBulk, len(req.Items)),
			fmt.Sprintf("A bulk call carries 1 to %d messages (%d given).", MaxBulk, len(req.Items)))
	}
	if err := s.spend(c, len(req.Items)); err != nil {
		return err
	}
	out := bulkResponse{Items: make([]bulkResult, len(req.Items))}
	work := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < bulkWorkers && w < len(req.Items); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				out.Items[i] = c.bulkOne(i, req.Items[i])
			}
		}()
	}
	for i := range req.Items {
		work <- i
	}
	close(work)
	wg.Wait()
	for _, it := range out.Items {
		switch {
		case it.Accepted != nil && it.Accepted.Replayed:
			out.Replayed++
		case it.Accepted != nil:
			out.Accepted++
		case it.Status >= 500 || it.Status == http.StatusTooManyRequests:
			out.Failed++
		default:
			out.Refused++
		}
	}
	return c.json(http.StatusOK, out)
}

func (c *call) bulkOne(i int, it bulkItem) bulkResult {
	res := bulkResult{Index: i, IdempotencyKey: it.IdempotencyKey}
	if strings.TrimSpace(it.IdempotencyKey) == "" {
		res.Problem = problemf(http.StatusBadRequest, "missing-idempotency-key", "Idempotency key required",
			"Toplu gönderimde her ileti bir tekrar anahtarı (idempotency_key) taşımalıdır; hiçbir şey gönderilmedi.",
			"Each message of a bulk call needs an idempotency_key, so that a retry never sends it twice; nothing was sent.")
	} else if len(it.Message) == 0 {
		res.Problem = problemf(http.StatusBadRequest, "empty-message", "No message", "Öğe bir ileti taşımıyor.", "The item carries no message (base64 in \"message\").")
	} else {
		acc, ref := c.submit(it.Message, it.IdempotencyKey)
		if ref != nil {
			res.Problem = refusalProblem(ref)
		} else {
			res.Accepted = acceptedOf(acc)
			res.Status = http.StatusCreated
			if acc.Replayed {
				res.Status = http.StatusOK
			}
		}
	}
	if res.Problem != nil {
		res.Status = res.Problem.Status
	}
	return res
}
