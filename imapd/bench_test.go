package imapd

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/kephs/kep/mailbox"
	"github.com/kephs/kep/provider/providertest"
	"github.com/kephs/kep/store"
	"github.com/kephs/kep/store/storetest"
)

// BenchmarkFetch measures FETCH over a 10,000-message folder, through TLS
// on loopback with the go-imap client: UID FETCH 1:* (FLAGS RFC822.SIZE
// ENVELOPE) and UID FETCH 1:* (BODY.PEEK[]), in messages per second. Two
// folders: INBOX, whose 10,000 rows are copies of one delivered KEP
// message (each fetch of the body renders the provider's envelope from the
// original, as for every KEP message), and Drafts, whose rows share one
// stored 4 KiB blob (streamed from the content store). ENVELOPE is cached
// by content, so in both folders it is parsed once: the figures show the
// protocol and store path, not MIME parsing.
//
//	go test -run '^$' -bench BenchmarkFetch -benchtime 5x ./imapd/
func BenchmarkFetch(b *testing.B) {
	for _, d := range storetest.Backends(b) {
		b.Run(string(d), func(b *testing.B) { benchFetch(b, d) })
	}
}

const benchMessages = 10000

func benchFetch(b *testing.B, d store.Dialect) {
	ctx := context.Background()
	w := providertest.New(b, d)
	e := startServer(b, w)
	ayse, mehmet := w.Person("Ayşe", "Bench"), w.Person("Mehmet", "Bench")
	msg := send(b, w, ayse, "Toplu ileti", mehmet.Account.Address)
	q := w.Q()
	if _, err := q.Exec(ctx, `UPDATE accounts SET quota_bytes = ? WHERE id = ?`, int64(1)<<40, mehmet.Account.ID); err != nil {
		b.Fatal(err)
	}
	inbox, _ := mailbox.GetFolder(ctx, q, mehmet.Account.ID, mailbox.Inbox)
	drafts, _ := mailbox.GetFolder(ctx, q, mehmet.Account.ID, mailbox.Drafts)
	first, _ := mailbox.ListMessages(ctx, q, inbox.ID)
	draft := "From: " + mehmet.Account.Address + "\r\nTo: " + ayse.Account.Address + "\r\nSubject: Taslak\r\nDate: Mon, 30 Nov 2026 10:00:00 +0300\r\nMessage-ID: <taslak@hs01.kep.tr>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" +
		strings.Repeat("Taslak metni, dört kilobayt olana dek tekrar eder.\r\n", 80)
	dd, n, err := w.Node.Blobs.Put(strings.NewReader(draft))
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	err = w.Node.DB.InTx(ctx, func(tx *store.Tx) error {
		now := w.Clock.Now()
		for i := 1; i < benchMessages; i++ {
			orig := first[0].Content
			if _, err := mailbox.Append(ctx, tx, inbox, mailbox.New{Kind: mailbox.KindKEP, MessageID: msg.ID, Ref: -1,
				Content: &orig, Size: first[0].Size, InternalDate: now}); err != nil {
				return err
			}
		}
		for i := 0; i < benchMessages; i++ {
			c := dd
			if _, err := mailbox.Append(ctx, tx, drafts, mailbox.New{Kind: mailbox.KindDraft, Ref: -1, Content: &c, Size: n,
				InternalDate: now, Flags: []string{`\Draft`}}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("%s: inserted %d rows in %s", d, 2*benchMessages-1, time.Since(start).Round(time.Millisecond))

	c := e.login(mehmet.Account.Address, mehmet.Password)
	all := imap.UIDSet{{Start: 1, Stop: 0}}
	meta := &imap.FetchOptions{UID: true, Flags: true, RFC822Size: true, Envelope: true}
	body := &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}}}
	for _, folder := range []string{"INBOX", "Drafts"} {
		for _, tc := range []struct {
			name string
			o    *imap.FetchOptions
		}{{"flags-size-envelope", meta}, {"body", body}} {
			b.Run(folder+"/"+tc.name, func(b *testing.B) {
				if sd := mustSelect(b, c, folder, true); sd.NumMessages != benchMessages {
					b.Fatalf("%s holds %d messages", folder, sd.NumMessages)
				}
				streamFetch(b, c, all, tc.o) // warm: the first fetch of a KEP message renders and caches
				b.ResetTimer()
				var msgs, bytes int64
				for i := 0; i < b.N; i++ {
					m, n := streamFetch(b, c, all, tc.o)
					msgs, bytes = msgs+m, bytes+n
				}
				el := b.Elapsed().Seconds()
				b.ReportMetric(float64(msgs)/el, "msgs/s")
				if bytes > 0 {
					b.ReportMetric(float64(bytes)/el/1e6, "MB/s")
				}
				if msgs != int64(b.N)*benchMessages {
					b.Fatalf("fetched %d messages, want %d", msgs, int64(b.N)*benchMessages)
				}
			})
		}
	}
}

// streamFetch runs a FETCH without keeping the responses and returns the
// number of messages and body bytes received.
func streamFetch(b testing.TB, c *imapclient.Client, set imap.NumSet, o *imap.FetchOptions) (msgs, n int64) {
	cmd := c.Fetch(set, o)
	for m := cmd.Next(); m != nil; m = cmd.Next() {
		for item := m.Next(); item != nil; item = m.Next() {
			if bs, ok := item.(imapclient.FetchItemDataBodySection); ok && bs.Literal != nil {
				k, _ := io.Copy(io.Discard, bs.Literal)
				n += k
			}
		}
		msgs++
	}
	if err := cmd.Close(); err != nil {
		b.Fatal(fmt.Errorf("fetch: %w", err))
	}
	return msgs, n
}
