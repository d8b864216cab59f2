package api

// Webhooks for evidence events (docs/api.md, "Webhooks"): an account
// subscribes a URL; every evidence about its messages — issued here or
// returned by the recipient's provider — is POSTed to it as JSON, signed
// with HMAC-SHA256 under the subscription's own secret. The courier
// (Webhooks.Dispatch) reads the log's leaves in order past a cursor and,
// in one transaction with the cursor's move, writes one webhook_calls row
// and one queue item (kind webhook) per subscription and evidence; the
// sender (Webhooks.RunDue) claims due items and retries failures with the
// queue's back-off until Horizon, then records the call failed.

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/kephs/kep/evidence"
	"github.com/kephs/kep/queue"
	"github.com/kephs/kep/store"
)

// SignatureHeader carries a webhook call's signature:
// "t=<unix seconds>,v1=<hex HMAC-SHA256(secret, t + "." + body)>".
const SignatureHeader = "X-KEP-Signature"

// Sign is the v1 signature of body sent at t under secret.
func Sign(secret []byte, t time.Time, body []byte) string {
	m := hmac.New(sha256.New, secret)
	fmt.Fprintf(m, "%d.", t.Unix())
	m.Write(body)
	return fmt.Sprintf("t=%d,v1=%s", t.Unix(), hex.EncodeToString(m.Sum(nil)))
}

const webhookSecretPrefix = "whsec_"

func webhookJSON(id int64, u, codes string, created time.Time) map[string]any {
	out := map[string]any{"id": id, "url": u, "created_at": created, "codes": []int{}}
	if codes != "" {
		var cs []int
		for _, c := range strings.Split(codes, ",") {
			n, _ := strconv.Atoi(c)
			cs = append(cs, n)
		}
		out["codes"] = cs
	}
	return out
}

// listWebhooks: GET /api/v1/accounts/{address}/webhooks.
func (s *Server) listWebhooks(c *call) error {
	a, err := c.managed()
	if err != nil {
		return err
	}
	rows, err := s.Accounts.DB.Q().Query(c.ctx, `SELECT id, url, codes, created_at FROM webhooks WHERE account_id = ? AND deleted_at IS NULL ORDER BY id`, a.ID)
	if err != nil {
		return err
	}
	defer rows.Close()
	list := []map[string]any{}
	for rows.Next() {
		var id, at int64
		var u, codes string
		if err := rows.Scan(&id, &u, &codes, &at); err != nil {
			return err
		}
		list = append(list, webhookJSON(id, u, codes, store.FromMillis(at)))
	}
	if err := rows.Err(); err != nil {
		return err
	}
	return c.json(http.StatusOK, map[string]any{"webhooks": list})
}

// checkWebhookURL allows https URLs, and http to the loopback address only
// (development).
func checkWebhookURL(raw string) error {
	u, err := url.Parse(raw)
	if err == nil && u.Host != "" && (u.Scheme == "https" || u.Scheme == "http" && isLoopback(u.Hostname())) {
		return nil
	}
	return problemf(http.StatusBadRequest, "bad-webhook-url", "Bad webhook URL",
		"Webhook adresi bir https URL'si olmalı (http yalnızca geri döngü adresine).", "The webhook URL must be an https URL (http only to the loopback address).")
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// createWebhook: POST /api/v1/accounts/{address}/webhooks with {"url": …,
// "codes": [40, 60]} — the answer holds the signing secret, shown this
// once.
func (s *Server) createWebhook(c *call) error {
	a, err := c.managed()
	if err != nil {
		return err
	}
	var body struct {
		URL   string `json:"url"`
		Codes []int  `json:"codes"`
	}
	if err := c.readJSON(&body, 4096); err != nil {
		return err
	}
	if err := checkWebhookURL(body.URL); err != nil {
		return err
	}
	var codes []string
	for _, n := range body.Codes {
		if !evidence.Code(n).Valid() {
			return problemf(http.StatusBadRequest, "bad-evidence-code", "Unknown evidence code",
				"Delil kodları: 10, 11, 20, 21, 31, 40, 41, 60, 61.", fmt.Sprintf("%d is not an evidence code (10, 11, 20, 21, 31, 40, 41, 60, 61).", n))
		}
		codes = append(codes, strconv.Itoa(n))
	}
	secret := make([]byte, 32)
	rand.Read(secret)
	now := s.now()
	id, err := store.InsertID(c.ctx, s.Accounts.DB.Q(), `INSERT INTO webhooks (account_id, url, secret, codes, created_by, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
		a.ID, body.URL, secret, strings.Join(codes, ","), c.actor().Name, store.Millis(now))
	if err != nil {
		return err
	}
	out := webhookJSON(id, body.URL, strings.Join(codes, ","), now)
	out["secret"] = webhookSecretPrefix + base64.RawURLEncoding.EncodeToString(secret)
	return c.json(http.StatusCreated, out)
}

// WebhookSecret turns the secret as shown at creation into the HMAC key.
func WebhookSecret(shown string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimPrefix(shown, webhookSecretPrefix))
}

// deleteWebhook: DELETE /api/v1/accounts/{address}/webhooks/{id} — no
// more calls; pending ones are dropped.
func (s *Server) deleteWebhook(c *call) error {
	a, err := c.managed()
	if err != nil {
		return err
	}
	r, err := s.Accounts.DB.Q().Exec(c.ctx, `UPDATE webhooks SET deleted_at = ? WHERE id = ? AND account_id = ? AND deleted_at IS NULL`,
		store.Millis(s.now()), c.r.PathValue("id"), a.ID)
	if err != nil {
		return err
	}
	if n, _ := r.RowsAffected(); n == 0 {
		return problemf(http.StatusNotFound, "no-such-webhook", "No such webhook", "Bu hesapta böyle bir webhook yok.", "No such webhook on this account.")
	}
	c.w.WriteHeader(http.StatusNoContent)
	return nil
}

// Webhooks dispatches and sends webhook calls.
type Webhooks struct {
	DB      *store.DB
	Client  *http.Client // nil: a client with a 10-second timeout
	Now     func() time.Time
	Backoff queue.Backoff // zero: queue.DefaultPolicy's
	Horizon time.Duration // how long a call is retried; zero: three days
	Owner   string        // this node, in queue_items.lease_owner
	Log     *slog.Logger
}

func (w *Webhooks) now() time.Time {
	if w.Now != nil {
		return w.Now().UTC()
	}
	return time.Now().UTC()
}

func (w *Webhooks) log() *slog.Logger {
	if w.Log != nil {
		return w.Log
	}
	return slog.Default()
}

// Run dispatches and sends every interval until ctx ends.
func (w *Webhooks) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, err := w.Dispatch(ctx); err != nil && ctx.Err() == nil {
			w.log().Error("webhooks: dispatch", "err", err)
		}
		if _, err := w.RunDue(ctx, 64); err != nil && ctx.Err() == nil {
			w.log().Error("webhooks: send", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// leaf is one evidence in the log, ours or returned.
type leaf struct {
	seq       int64
	code      int
	account   int64  // the sender's account
	recipient string // the recipient it concerns
	at        int64
}

// dispatchWindow bounds the leaves one Dispatch reads.
const dispatchWindow = 1000

// Dispatch makes the calls for evidence past the cursor, and says how
// many.
func (w *Webhooks) Dispatch(ctx context.Context) (int, error) {
	made := 0
	err := w.DB.InTx(ctx, func(tx *store.Tx) error {
		var cursor int64
		if err := tx.QueryRow(ctx, `SELECT seq FROM webhook_cursor WHERE id = 1`).Scan(&cursor); err != nil && !errors.Is(store.MapErr(err), store.ErrNotFound) {
			return err
		}
		var hooks []struct {
			id, account, created int64
			codes                string
		}
		rows, err := tx.Query(ctx, `SELECT id, account_id, created_at, codes FROM webhooks WHERE deleted_at IS NULL`)
		if err != nil {
			return err
		}
		for rows.Next() {
			var h struct {
				id, account, created int64
				codes                string
			}
			if err := rows.Scan(&h.id, &h.account, &h.created, &h.codes); err != nil {
				rows.Close()
				return err
			}
			hooks = append(hooks, h)
		}
		rows.Close()
		var leaves []leaf
		var top int64 = cursor
		for _, q := range []string{
			`SELECT seq, code, COALESCE(account_id, 0), subject, event_time FROM evidence WHERE seq >= ? AND seq < ? ORDER BY seq`,
			`SELECT seq, code, account_id, recipient, event_time FROM foreign_evidence WHERE seq >= ? AND seq < ? ORDER BY seq`,
		} {
			rows, err := tx.Query(ctx, q, cursor, cursor+dispatchWindow)
			if err != nil {
				return err
			}
			for rows.Next() {
				var l leaf
				if err := rows.Scan(&l.seq, &l.code, &l.account, &l.recipient, &l.at); err != nil {
					rows.Close()
					return err
				}
				leaves = append(leaves, l)
				top = max(top, l.seq+1)
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
		}
		if top == cursor {
			return nil
		}
		local := map[string]int64{} // recipient address → account here
		now := store.Millis(w.now())
		for _, l := range leaves {
			targets := []int64{l.account}
			if l.recipient != "" && len(hooks) > 0 {
				id, ok := local[l.recipient]
				if !ok {
					if a, err := store.GetAccountByAddress(ctx, tx, l.recipient); err == nil {
						id = a.ID
					}
					local[l.recipient] = id
				}
				if id != 0 && id != l.account {
					targets = append(targets, id)
				}
			}
			for _, h := range hooks {
				if !slicesContains(targets, h.account) || l.at < h.created || h.codes != "" && !slicesContains(strings.Split(h.codes, ","), strconv.Itoa(l.code)) {
					continue
				}
				var id int64
				err := tx.QueryRow(ctx, `INSERT INTO webhook_calls (webhook_id, seq, state, created_at) VALUES (?, ?, 'pending', ?) ON CONFLICT DO NOTHING RETURNING id`,
					h.id, l.seq, now).Scan(&id)
				if errors.Is(err, sql.ErrNoRows) {
					continue
				}
				if err != nil {
					return err
				}
				horizon := w.Horizon
				if horizon == 0 {
					horizon = 72 * time.Hour
				}
				if _, err := tx.Exec(ctx, `INSERT INTO queue_items (kind, ref, created_at, attempts, next_at, warn_at, deadline_at, reason) VALUES (?, ?, ?, 0, ?, NULL, ?, '')`,
					string(queue.KindWebhook), id, now, now, now+horizon.Milliseconds()); err != nil {
					return err
				}
				made++
			}
		}
		_, err = tx.Exec(ctx, `INSERT INTO webhook_cursor (id, seq) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET seq = excluded.seq`, top)
		return err
	})
	return made, err
}

func slicesContains[T comparable](s []T, v T) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// RunDue sends up to limit due calls and says how many were delivered.
func (w *Webhooks) RunDue(ctx context.Context, limit int) (int, error) {
	owner := w.Owner
	if owner == "" {
		h, _ := os.Hostname()
		owner = fmt.Sprintf("%s/%d", h, os.Getpid())
	}
	bo := w.Backoff
	if bo.First == 0 {
		bo = queue.DefaultPolicy().Backoff
	}
	lock := ""
	if w.DB.Dialect == store.Postgres {
		lock = " FOR UPDATE SKIP LOCKED"
	}
	now := w.now()
	rows, err := w.DB.Q().Query(ctx, `UPDATE queue_items SET lease_owner = ?, next_at = ?
		WHERE id IN (SELECT id FROM queue_items WHERE next_at <= ? AND kind = '`+string(queue.KindWebhook)+`' ORDER BY next_at, id LIMIT ?`+lock+`)
		RETURNING id, ref, attempts, deadline_at`, owner, store.Millis(now.Add(2*time.Minute)), store.Millis(now), limit)
	if err != nil {
		return 0, err
	}
	type item struct{ id, call, deadline int64 }
	var items []item
	var attempts []int
	for rows.Next() {
		var it item
		var n int
		if err := rows.Scan(&it.id, &it.call, &n, &it.deadline); err != nil {
			rows.Close()
			return 0, err
		}
		items, attempts = append(items, it), append(attempts, n)
	}
	rows.Close()
	sent := 0
	var errs []error
	for i, it := range items {
		status, err := w.send(ctx, it.call)
		if err == nil {
			sent++
			errs = append(errs, w.finish(ctx, it.id, it.call, "delivered", status, ""))
			continue
		}
		w.log().Warn("webhooks: call failed", "call", it.call, "status", status, "err", err)
		if w.now().After(store.FromMillis(it.deadline)) {
			errs = append(errs, w.finish(ctx, it.id, it.call, "failed", status, err.Error()))
			continue
		}
		next := w.now().Add(bo.Delay(attempts[i] + 1))
		_, e1 := w.DB.Q().Exec(ctx, `UPDATE queue_items SET attempts = attempts + 1, next_at = ?, lease_owner = NULL, reason = ? WHERE id = ?`,
			store.Millis(next), truncate(err.Error(), 300), it.id)
		_, e2 := w.DB.Q().Exec(ctx, `UPDATE webhook_calls SET attempts = attempts + 1, last_status = ?, last_error = ? WHERE id = ?`, status, truncate(err.Error(), 300), it.call)
		errs = append(errs, e1, e2)
	}
	return sent, errors.Join(errs...)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

func (w *Webhooks) finish(ctx context.Context, item, call int64, state string, status int, why string) error {
	return w.DB.InTx(ctx, func(tx *store.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE webhook_calls SET state = ?, attempts = attempts + 1, last_status = ?, last_error = ?, done_at = ? WHERE id = ?`,
			state, status, truncate(why, 300), store.Millis(w.now()), call); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DELETE FROM queue_items WHERE id = ?`, item)
		return err
	})
}

// Event is the body of a webhook call.
type Event struct {
	ID       string         `json:"id"` // the call's id: the same on every retry
	Type     string         `json:"type"`
	Account  string         `json:"account"`
	Evidence map[string]any `json:"evidence"`
	Links    map[string]any `json:"links"`
}

// send makes one call; status is the HTTP status, 0 when none came.
func (w *Webhooks) send(ctx context.Context, callID int64) (int, error) {
	q := w.DB.Q()
	var hookURL, addr string
	var secret []byte
	var seq int64
	var deleted int64
	err := q.QueryRow(ctx, `SELECT w.url, w.secret, a.address, c.seq, COALESCE(w.deleted_at, 0) FROM webhook_calls c JOIN webhooks w ON w.id = c.webhook_id
		JOIN accounts a ON a.id = w.account_id WHERE c.id = ?`, callID).Scan(&hookURL, &secret, &addr, &seq, &deleted)
	if err != nil {
		return 0, err
	}
	if deleted != 0 {
		return 0, nil // unsubscribed: nothing to send, the call ends
	}
	ev := map[string]any{"seq": seq}
	var id, rcpt string
	var code int
	var msg, at int64
	foreign := false
	err = q.QueryRow(ctx, `SELECT id, code, COALESCE(message_id, 0), subject, event_time FROM evidence WHERE seq = ?`, seq).Scan(&id, &code, &msg, &rcpt, &at)
	if errors.Is(store.MapErr(err), store.ErrNotFound) {
		foreign = true
		err = q.QueryRow(ctx, `SELECT evidence_id, code, message_id, recipient, event_time FROM foreign_evidence WHERE seq = ?`, seq).Scan(&id, &code, &msg, &rcpt, &at)
	}
	if err != nil {
		return 0, err
	}
	ev["id"], ev["code"], ev["event"], ev["event_time"] = id, code, evidence.Code(code).Label(), store.FromMillis(at)
	if rcpt != "" {
		ev["recipient"] = rcpt
	}
	if foreign {
		ev["issued_by_recipient_provider"] = true
	}
	links := map[string]any{"bundle": "/api/v1/evidence/" + id + "/bundle"}
	if msg != 0 {
		ev["message_id"] = msg
		links["status"] = "/api/v1/messages/" + strconv.FormatInt(msg, 10) + "/status"
	}
	body, _ := json.Marshal(Event{ID: "call-" + strconv.FormatInt(callID, 10), Type: "evidence", Account: addr, Evidence: ev, Links: links})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, hookURL, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "kep-webhooks/1")
	req.Header.Set(SignatureHeader, Sign(secret, w.now(), body))
	client := w.Client
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return resp.StatusCode, fmt.Errorf("the endpoint answered %s", resp.Status)
	}
	return resp.StatusCode, nil
}
