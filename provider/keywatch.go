package provider

import (
	"context"
	"crypto/x509"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kephs/kep/evidence"
)

// The provider's own keys (issue 9.3): a node issues no evidence it cannot
// stand behind. KeyWatch holds the validity window of each key the node
// signs or stamps with, and the state of the time-stamp authority, and
// answers the evidence issuer's Ready question:
//
//   - the provider certificate (evidence XAdES and envelope S/MIME signer)
//     and its chain must be valid now: outside its window every issue is
//     refused (evidence.NotReadyError), and the access point answers 451
//     with no rejection evidence (the sender did nothing wrong);
//   - the TSA may fail, or its certificate be expired, for
//     tsa.outage_tolerance: checkpoints wait and are stamped when it is
//     back; past the tolerance every issue is refused likewise;
//   - the log key has no certificate: keys.log_key_not_after is the
//     operator's date for rotating it; past it the node alarms (log, metric,
//     /healthz) but keeps issuing, since its checkpoints stay verifiable.
//
// Each key is warned about 30 and 7 days before its end, once per
// threshold crossing (a log line at warn level), and an invalid key once at
// error level; the metrics and /healthz show the state at every scrape.

// Key names, as metrics labels, /healthz checks and NotReadyError.Key.
const (
	KeyProvider = "provider"
	KeyTSA      = "tsa"
	KeyLog      = "log"
)

// Warning thresholds before a key's end.
var warnBefore = []time.Duration{30 * 24 * time.Hour, 7 * 24 * time.Hour}

// Levels of a key, in order of gravity; a warning is logged when a key
// reaches a graver level than the last one logged.
const (
	levelOK      = 0
	levelInvalid = 3 // levels 1 and 2 are the thresholds of warnBefore
)

// KeyWatch watches the provider's keys and its time-stamp authority. Safe
// for concurrent use; every method takes the time from the caller or Now.
type KeyWatch struct {
	Now    func() time.Time
	Logger *slog.Logger
	// Tolerance is how long the TSA may fail before issuing stops
	// (tsa.outage_tolerance).
	Tolerance time.Duration

	mu       sync.Mutex
	keys     map[string]*watchedKey
	tsaDown  time.Time // first failure of the current outage; zero while the TSA answers
	tsaErr   string    // the last failure
	tsaAlarm bool      // the tolerance's end was logged
}

type watchedKey struct {
	what      string    // "provider certificate"
	notBefore time.Time // zero: none
	notAfter  time.Time // zero: none
	level     int       // the gravest level logged since the window was set
}

// KeyStatus is the state of one key at a time.
type KeyStatus struct {
	Key      string
	What     string
	Valid    bool      // usable now (for the TSA: within its outage tolerance too)
	NotAfter time.Time // zero when the key has none
	Detail   string    // for the operator: what is wrong or due, and when
}

// NewKeyWatch returns a watch with no keys.
func NewKeyWatch(now func() time.Time, logger *slog.Logger, tolerance time.Duration) *KeyWatch {
	return &KeyWatch{Now: now, Logger: logger, Tolerance: tolerance, keys: map[string]*watchedKey{}}
}

// SetCert sets a key's window from a certificate and its chain: the
// latest NotBefore and the earliest NotAfter among them (a chain is only as
// valid as its shortest-lived link).
func (w *KeyWatch) SetCert(key, what string, leaf *x509.Certificate, chain []*x509.Certificate) {
	nb, na := leaf.NotBefore, leaf.NotAfter
	for _, c := range chain {
		if c.NotBefore.After(nb) {
			nb = c.NotBefore
		}
		if c.NotAfter.Before(na) {
			na = c.NotAfter
		}
	}
	w.set(key, what, nb, na)
}

// SetNotAfter sets a key's end without a start (the log key).
func (w *KeyWatch) SetNotAfter(key, what string, notAfter time.Time) {
	w.set(key, what, time.Time{}, notAfter)
}

func (w *KeyWatch) set(key, what string, nb, na time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	k := w.keys[key]
	if k != nil && k.notBefore.Equal(nb) && k.notAfter.Equal(na) {
		return
	}
	w.keys[key] = &watchedKey{what: what, notBefore: nb.UTC(), notAfter: na.UTC()}
}

// tsaCertValid says whether the TSA certificate, when known, is valid now.
func (w *KeyWatch) tsaCertValid(now time.Time) (bool, *watchedKey) {
	w.mu.Lock()
	defer w.mu.Unlock()
	k := w.keys[KeyTSA]
	if k == nil {
		return true, nil
	}
	return level(k, now) != levelInvalid, k
}

// StampFailed records a failed time stamp. The first failure of an outage
// is logged at warn level; later ones are counted (kep_timestamp_failures_total)
// and not logged again.
func (w *KeyWatch) StampFailed(now time.Time, err error) {
	w.mu.Lock()
	first := w.tsaDown.IsZero()
	if first {
		w.tsaDown = now
	}
	w.tsaErr = err.Error()
	w.mu.Unlock()
	if first {
		w.Logger.Warn("time-stamp authority failing: checkpoints wait and are stamped when it answers; submissions are refused if it still fails after the tolerance",
			"tolerance", w.Tolerance.String(), "err", err)
	}
}

// Stamped records a successful time stamp: an outage ends.
func (w *KeyWatch) Stamped(now time.Time) {
	w.mu.Lock()
	since := w.tsaDown
	w.tsaDown, w.tsaErr, w.tsaAlarm = time.Time{}, "", false
	w.mu.Unlock()
	if !since.IsZero() {
		w.Logger.Info("time-stamp authority answers again; waiting checkpoints are stamped", "outage", now.Sub(since).Round(time.Second).String())
	}
}

// Ready is the evidence issuer's question (evidence.IssuerService.Ready):
// nil when the provider can stand behind evidence signed now, otherwise
// an *evidence.NotReadyError naming the key and the cause.
func (w *KeyWatch) Ready(now time.Time) error {
	w.Check(now)
	for _, st := range w.Status(now) {
		if !st.Valid && st.Key != KeyLog {
			return &evidence.NotReadyError{Key: st.Key, Reason: st.Detail}
		}
	}
	return nil
}

// Check logs each key's threshold crossings at now: a warning when a key
// is within 30 or 7 days of its end, an error when it is invalid, and an
// error when a TSA outage outlasts the tolerance; each once.
func (w *KeyWatch) Check(now time.Time) {
	type line struct {
		lvl  slog.Level
		msg  string
		args []any
	}
	var out []line
	w.mu.Lock()
	for _, name := range sortedKeys(w.keys) {
		k := w.keys[name]
		l := level(k, now)
		if l <= k.level {
			k.level = l // valid again (a not-yet-valid certificate's start): later crossings are logged anew
			continue
		}
		k.level = l
		if l == levelInvalid {
			out = append(out, line{slog.LevelError, "key not valid: " + describe(k, now), []any{"key", name, "not_before", k.notBefore, "not_after", k.notAfter}})
		} else {
			out = append(out, line{slog.LevelWarn, "key expires soon: " + describe(k, now) + "; rotate it (docs/deployment.md, Key rotation)",
				[]any{"key", name, "not_after", k.notAfter, "days_left", int(k.notAfter.Sub(now).Hours() / 24)}})
		}
	}
	if !w.tsaDown.IsZero() && !w.tsaAlarm && now.Sub(w.tsaDown) > w.Tolerance {
		w.tsaAlarm = true
		out = append(out, line{slog.LevelError, "time-stamp authority failing longer than the tolerance: submissions are refused (451) until it answers",
			[]any{"key", KeyTSA, "since", w.tsaDown, "tolerance", w.Tolerance.String(), "err", w.tsaErr}})
	}
	w.mu.Unlock()
	for _, l := range out {
		w.Logger.Log(context.Background(), l.lvl, l.msg, l.args...)
	}
}

// Status returns every key's state at now, in name order.
func (w *KeyWatch) Status(now time.Time) []KeyStatus {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []KeyStatus
	for _, name := range sortedKeys(w.keys) {
		k := w.keys[name]
		st := KeyStatus{Key: name, What: k.what, NotAfter: k.notAfter, Valid: level(k, now) != levelInvalid}
		if level(k, now) != levelOK {
			st.Detail = describe(k, now)
		}
		if name == KeyTSA {
			// An expired TSA certificate is an outage from its end on.
			down := w.tsaDown
			if !st.Valid && !k.notAfter.IsZero() && now.After(k.notAfter) && (down.IsZero() || k.notAfter.Before(down)) {
				down = k.notAfter
			}
			st.Valid = true
			if !down.IsZero() {
				cause := w.tsaErr
				if cause == "" || down.Equal(k.notAfter) {
					cause = describe(k, now)
				}
				st.Valid = now.Sub(down) <= w.Tolerance
				st.Detail = fmt.Sprintf("the time-stamp authority fails since %s (%s); tolerated for %s", down.Format(time.RFC3339), cause, w.Tolerance)
				if !st.Valid {
					st.Detail += ", exceeded: no evidence is issued until it answers"
				}
			}
		}
		out = append(out, st)
	}
	if _, ok := w.keys[KeyTSA]; !ok && !w.tsaDown.IsZero() {
		st := KeyStatus{Key: KeyTSA, What: "time-stamp authority", Valid: now.Sub(w.tsaDown) <= w.Tolerance}
		st.Detail = fmt.Sprintf("the time-stamp authority fails since %s (%s); tolerated for %s", w.tsaDown.Format(time.RFC3339), w.tsaErr, w.Tolerance)
		out = append(out, st)
	}
	return out
}

func level(k *watchedKey, now time.Time) int {
	if !k.notBefore.IsZero() && now.Before(k.notBefore) || !k.notAfter.IsZero() && !now.Before(k.notAfter) {
		return levelInvalid
	}
	if k.notAfter.IsZero() {
		return levelOK
	}
	l := levelOK
	for i, d := range warnBefore {
		if k.notAfter.Sub(now) <= d {
			l = i + 1
		}
	}
	return l
}

func describe(k *watchedKey, now time.Time) string {
	switch {
	case !k.notBefore.IsZero() && now.Before(k.notBefore):
		return fmt.Sprintf("the %s is not valid before %s", k.what, k.notBefore.Format(time.RFC3339))
	case !k.notAfter.IsZero() && !now.Before(k.notAfter):
		return fmt.Sprintf("the %s expired at %s", k.what, k.notAfter.Format(time.RFC3339))
	case !k.notAfter.IsZero():
		return fmt.Sprintf("the %s expires at %s, in %d days", k.what, k.notAfter.Format(time.RFC3339), int(k.notAfter.Sub(now).Hours()/24))
	}
	return "the " + k.what + " is valid"
}

func sortedKeys(m map[string]*watchedKey) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

var (
	keyValidDesc  = prometheus.NewDesc("kep_provider_key_valid", "1 when the provider's key is usable now (the TSA: answering, or failing within tsa.outage_tolerance), 0 otherwise: evidence issuing stops for the provider and tsa keys.", []string{"key"}, nil)
	keyExpiryDesc = prometheus.NewDesc("kep_provider_key_expiry_seconds", "Seconds until the key's certificate (or its chain) expires, or keys.log_key_not_after for the log key; negative after. Absent when it has no end.", []string{"key"}, nil)
)

// keyCollector reports the watch at scrape time.
type keyCollector struct{ w *KeyWatch }

func (c keyCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- keyValidDesc
	ch <- keyExpiryDesc
}

func (c keyCollector) Collect(ch chan<- prometheus.Metric) {
	now := c.w.Now()
	for _, st := range c.w.Status(now) {
		v := 0.0
		if st.Valid {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(keyValidDesc, prometheus.GaugeValue, v, st.Key)
		if !st.NotAfter.IsZero() {
			ch <- prometheus.MustNewConstMetric(keyExpiryDesc, prometheus.GaugeValue, st.NotAfter.Sub(now).Seconds(), st.Key)
		}
	}
}

// watchedStamper time-stamps through the TSA and tells the watch: it
// learns the TSA certificate from each token, refuses to stamp while that
// certificate is not valid (a time stamp that will not verify is worse than
// a checkpoint that waits), and records failures and recoveries.
type watchedStamper struct {
	inner interface {
		stamp(ctx context.Context, data []byte) (der []byte, at time.Time, cert *x509.Certificate, err error)
	}
	w *KeyWatch
}

// StampError is the error of a time stamp that failed: the checkpoint
// waits, and the watch has recorded it (no log line per attempt).
type StampError struct{ Err error }

func (e *StampError) Error() string { return "time stamp: " + e.Err.Error() }
func (e *StampError) Unwrap() error { return e.Err }

func (s watchedStamper) Stamp(ctx context.Context, data []byte) ([]byte, time.Time, error) {
	now := s.w.Now()
	if ok, k := s.w.tsaCertValid(now); !ok {
		err := &StampError{fmt.Errorf("not asked: %s", describe(k, now))}
		s.w.StampFailed(now, err.Err)
		return nil, time.Time{}, err
	}
	der, at, cert, err := s.inner.stamp(ctx, data)
	if err == nil && cert != nil {
		s.w.SetCert(KeyTSA, "TSA certificate", cert, nil)
		if at.Before(cert.NotBefore) || at.After(cert.NotAfter) {
			err = fmt.Errorf("the token's TSA certificate is not valid at its time %s (valid %s to %s)", at.Format(time.RFC3339), cert.NotBefore.Format(time.RFC3339), cert.NotAfter.Format(time.RFC3339))
		}
	}
	if err != nil {
		s.w.StampFailed(now, err)
		return nil, time.Time{}, &StampError{err}
	}
	s.w.Stamped(now)
	return der, at, nil
}
