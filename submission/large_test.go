package submission_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/kephs/kep/cms"
	"github.com/kephs/kep/mailbox"
	"github.com/kephs/kep/provider/providertest"
	"github.com/kephs/kep/store"
	"github.com/kephs/kep/submission"
)

// TestLargeMessage submits a 100 MB signed message and checks that the
// server accepts it holding it in memory once: the bytes it allocates while
// receiving, checking and storing it stay well under twice its size.
func TestLargeMessage(t *testing.T) {
	if testing.Short() {
		t.Skip("100 MB message")
	}
	w := providertest.New(t, store.SQLite)
	ayse, mehmet := w.Person("Ayşe", "Büyük"), w.Person("Mehmet", "Büyük")
	n := w.Node
	// The submission service alone (no delivery running), so that only
	// acceptance is measured.
	srv := submission.New(n.Mailbox, n.Accounts, n.ESign, n.TLSConfig(), submission.Options{Hostname: "localhost", Domain: "hs01.kep.tr", MaxMessageBytes: 110 << 20, MaxTotalBytes: 1 << 30})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.ServeSTARTTLS(l)
	defer srv.Close()

	const size = 100 << 20
	var body bytes.Buffer
	body.Grow(size + 1024)
	body.WriteString("Content-Type: text/plain; charset=us-ascii\r\n\r\n")
	line := strings.Repeat("0123456789", 7) + "\r\n"
	for body.Len() < size {
		body.WriteString(line)
	}
	hdr := fmt.Sprintf("From: %s\r\nTo: %s\r\nSubject: large\r\nDate: %s\r\n", ayse.Account.Address, mehmet.Account.Address, time.Now().Format(time.RFC1123Z))
	msg, err := cms.BuildSigned([]byte(hdr), body.Bytes(), ayse.Signer.Key, ayse.Signer.Cert, nil)
	if err != nil {
		t.Fatal(err)
	}
	body = bytes.Buffer{}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if err := send(t, l.Addr().String(), ayse.Account.Address, ayse.Password, ayse.Account.Address, []string{mehmet.Account.Address}, msg); err != nil {
		t.Fatalf("100 MB message refused: %v", err)
	}
	runtime.ReadMemStats(&after)
	allocated := after.TotalAlloc - before.TotalAlloc
	t.Logf("accepting %d MB allocated %d MB (server and client together)", len(msg)>>20, allocated>>20)
	if allocated > uint64(len(msg))*18/10 {
		t.Fatalf("accepting a %d MB message allocated %d MB: the message was held more than once", len(msg)>>20, allocated>>20)
	}
	// It is stored byte for byte.
	ms, err := mailbox.MessagesOf(context.Background(), w.Q(), ayse.Account.ID, 1)
	if err != nil || len(ms) != 1 || ms[0].Size != int64(len(msg)) {
		t.Fatalf("stored: %v %+v", err, ms)
	}
	stored, err := n.Blobs.ReadAll(ms[0].Digest)
	if err != nil || !bytes.Equal(stored, msg) {
		t.Fatal("the stored original differs from what was sent")
	}
}
