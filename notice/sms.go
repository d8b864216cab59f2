package notice

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"time"
)

// Gateway sends SMS. A real operator's gateway (an SMS aggregator's HTTP
// API, an SMPP bridge) implements it; docs/notices.md says how one plugs
// in. SendSMS returns an error for anything short of "accepted for
// delivery": the notice is then retried after the back-off.
type Gateway interface {
	SendSMS(ctx context.Context, to, text string) error
}

// FileGateway is the development gateway: it appends each SMS as one JSON
// line {"at", "to", "text"} to a file (the handset of `kep demo`, whose
// demo.json names it). Each line is written with one write to a file
// opened for appending, and synced.
type FileGateway struct {
	Path string
	Now  func() time.Time

	mu sync.Mutex
}

// FileSMS is one line of a FileGateway's file.
type FileSMS struct {
	At   time.Time `json:"at"`
	To   string    `json:"to"`
	Text string    `json:"text"`
}

// SendSMS implements Gateway.
func (g *FileGateway) SendSMS(ctx context.Context, to, text string) error {
	now := time.Now
	if g.Now != nil {
		now = g.Now
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // "<ayse@…>" stays readable
	if err := enc.Encode(FileSMS{At: now().UTC(), To: to, Text: text}); err != nil {
		return err
	}
	line := buf.Bytes() // one line, with its newline
	g.mu.Lock()
	defer g.mu.Unlock()
	f, err := os.OpenFile(g.Path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("the SMS file: %w", err)
	}
	if _, err := f.Write(line); err != nil {
		f.Close()
		return fmt.Errorf("the SMS file: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("the SMS file: %w", err)
	}
	return f.Close()
}

// HTTPGateway posts each SMS as JSON {"to": "+90…", "text": "…"} to URL,
// with a bearer token or basic authentication when set: the shape most
// SMS aggregators' REST APIs take, or a small adapter in front of one.
// Any 2xx answer is success; anything else, or no answer, is retried.
type HTTPGateway struct {
	URL      string
	Token    string // Authorization: Bearer …, when set
	Username string // basic authentication, when set (and no Token)
	Password string
	Client   *http.Client // nil: a client with a 30 s timeout
}

// SendSMS implements Gateway.
func (g *HTTPGateway) SendSMS(ctx context.Context, to, text string) error {
	body, err := json.Marshal(map[string]string{"to": to, "text": text})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, g.URL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("the SMS gateway URL: %w", err)
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	switch {
	case g.Token != "":
		req.Header.Set("Authorization", "Bearer "+g.Token)
	case g.Username != "":
		req.SetBasicAuth(g.Username, g.Password)
	}
	c := g.Client
	if c == nil {
		c = &http.Client{Timeout: 30 * time.Second}
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("the SMS gateway: %w", err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		// The answer's body may echo the number: only the status is kept.
		return fmt.Errorf("the SMS gateway answered %s", resp.Status)
	}
	return nil
}
