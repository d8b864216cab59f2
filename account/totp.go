package account

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/kephs/kep/store"
)

// A second factor for the web mail: time-based one-time passwords (TOTP,
// RFC 6238: HMAC-SHA1, 6 digits, 30-second steps, one step of clock skew
// either way), kept in totp_secrets. With it on, the web asks for a code
// after the password, and IMAP and SMTP accept only app passwords (auth.go),
// since a mail client cannot ask for a code and the main password alone
// would bypass the second factor. Each code is accepted once: the step it
// belongs to is remembered (last_step), and a code of that step or an
// earlier one is refused (RFC 6238 §5.2).

// Errors of the second factor.
var (
	ErrSecondFactorNeeded = errors.New("two-step verification is on: enter the 6-digit code from your authenticator app")
	ErrBadSecondFactor    = errors.New("the verification code is wrong or was used already: enter the current code from your authenticator app")
	ErrTOTPOn             = errors.New("two-step verification is on already: turn it off first to enrol a new device")
	ErrTOTPOff            = errors.New("two-step verification is not on")
	ErrNoEnrolment        = errors.New("no enrolment is waiting for confirmation: start again from the security page")
	ErrWebNeedsPassword   = errors.New("app passwords are for mail clients: log in on the web with your password")
)

var totpOpts = totp.ValidateOpts{Period: 30, Skew: 1, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}

// TOTPEnrolment is a secret waiting for its first code: the key URI
// (otpauth://) that the enrolment page shows as a QR code, and the secret in
// base32 for typing in.
type TOTPEnrolment struct {
	Secret string
	URL    string
}

type totpRow struct {
	secret    string
	confirmed bool
	lastStep  int64
}

func getTOTP(ctx context.Context, q store.Querier, p store.Principal) (*totpRow, error) {
	col, id := principalCol(p)
	var r totpRow
	var confirmed int64
	err := q.QueryRow(ctx, `SELECT secret, COALESCE(confirmed_at, 0), last_step FROM totp_secrets WHERE `+col+` = ?`, id).
		Scan(&r.secret, &confirmed, &r.lastStep)
	if err != nil {
		return nil, store.MapErr(err)
	}
	r.confirmed = confirmed != 0
	return &r, nil
}

func principalCol(p store.Principal) (string, int64) {
	if p.OperatorID != 0 {
		return "operator_id", p.OperatorID
	}
	return "account_id", p.AccountID
}

// TOTPEnabled reports whether the principal has a confirmed second factor.
func (s *Service) TOTPEnabled(ctx context.Context, p store.Principal) (bool, error) {
	return totpEnabled(ctx, s.DB.Q(), p)
}

func totpEnabled(ctx context.Context, q store.Querier, p store.Principal) (bool, error) {
	r, err := getTOTP(ctx, q, p)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return r.confirmed, nil
}

// BeginTOTP makes a new secret for the principal, unconfirmed until
// ConfirmTOTP sees a code made from it. label names the account in the
// authenticator app (an address; never a TCKN).
func (s *Service) BeginTOTP(ctx context.Context, actor Actor, p store.Principal, label string) (*TOTPEnrolment, error) {
	key, err := totp.Generate(totp.GenerateOpts{Issuer: "KEP " + s.Domain, AccountName: label, Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		return nil, err
	}
	now := s.now()
	col, id := principalCol(p)
	err = s.DB.InTx(ctx, func(tx *store.Tx) error {
		r, err := getTOTP(ctx, tx, p)
		switch {
		case err == nil && r.confirmed:
			return ErrTOTPOn
		case err == nil:
			_, err = tx.Exec(ctx, `UPDATE totp_secrets SET secret = ?, created_at = ?, last_step = 0 WHERE `+col+` = ?`, key.Secret(), store.Millis(now), id)
		case errors.Is(err, store.ErrNotFound):
			_, err = tx.Exec(ctx, `INSERT INTO totp_secrets (`+col+`, secret, created_at) VALUES (?, ?, ?)`, id, key.Secret(), store.Millis(now))
		}
		if err != nil {
			return err
		}
		return audit(ctx, tx, actor, now, "totp.begin", principalName(ctx, tx, p), "")
	})
	if err != nil {
		return nil, err
	}
	return &TOTPEnrolment{Secret: key.Secret(), URL: key.URL()}, nil
}

// ConfirmTOTP turns the second factor on when code is a current code of the
// secret BeginTOTP made.
func (s *Service) ConfirmTOTP(ctx context.Context, actor Actor, p store.Principal, code string) error {
	return s.codeAttempt(ctx, actor, p, func() error { return s.confirmTOTP(ctx, actor, p, code) })
}

func (s *Service) confirmTOTP(ctx context.Context, actor Actor, p store.Principal, code string) error {
	now := s.now()
	return s.DB.InTx(ctx, func(tx *store.Tx) error {
		r, err := getTOTP(ctx, tx, p)
		if errors.Is(err, store.ErrNotFound) {
			return ErrNoEnrolment
		}
		if err != nil {
			return err
		}
		if r.confirmed {
			return ErrTOTPOn
		}
		if err := useCode(ctx, tx, p, r, code, now); err != nil {
			return err
		}
		col, id := principalCol(p)
		if _, err := tx.Exec(ctx, `UPDATE totp_secrets SET confirmed_at = ? WHERE `+col+` = ?`, store.Millis(now), id); err != nil {
			return err
		}
		return audit(ctx, tx, actor, now, "totp.on", principalName(ctx, tx, p), "")
	})
}

// DisableTOTP turns the second factor off; it needs a current code.
func (s *Service) DisableTOTP(ctx context.Context, actor Actor, p store.Principal, code string) error {
	return s.codeAttempt(ctx, actor, p, func() error { return s.disableTOTP(ctx, actor, p, code) })
}

// codeAttempt runs a check of a code typed on the security page under the
// login Limiter, with the keys of the principal's login: six digits fall
// to about 330,000 guesses, so a stolen session must not be able to try
// them freely to turn the factor off. A throttled attempt returns a
// *ThrottledError.
func (s *Service) codeAttempt(ctx context.Context, actor Actor, p store.Principal, attempt func() error) error {
	name := strings.TrimPrefix(principalName(ctx, s.DB.Q(), p), "operator:") // an address or a TCKN, as typed at login
	_, err := s.limited(ctx, name, actor.Remote, func() (*Principal, error) { return nil, attempt() })
	return err
}

func (s *Service) disableTOTP(ctx context.Context, actor Actor, p store.Principal, code string) error {
	now := s.now()
	return s.DB.InTx(ctx, func(tx *store.Tx) error {
		r, err := getTOTP(ctx, tx, p)
		if errors.Is(err, store.ErrNotFound) || (err == nil && !r.confirmed) {
			return ErrTOTPOff
		}
		if err != nil {
			return err
		}
		if err := useCode(ctx, tx, p, r, code, now); err != nil {
			return err
		}
		if err := removeTOTP(ctx, tx, p); err != nil {
			return err
		}
		return audit(ctx, tx, actor, now, "totp.off", principalName(ctx, tx, p), "")
	})
}

// removeTOTP deletes a principal's second factor (turning it off, or
// password recovery: a lost phone is a reason to recover).
func removeTOTP(ctx context.Context, q store.Querier, p store.Principal) error {
	col, id := principalCol(p)
	_, err := q.Exec(ctx, `DELETE FROM totp_secrets WHERE `+col+` = ?`, id)
	return err
}

// checkTOTP accepts a code for a principal whose second factor is on.
func checkTOTP(ctx context.Context, q store.Querier, p store.Principal, code string, now time.Time) error {
	r, err := getTOTP(ctx, q, p)
	if err != nil {
		return err
	}
	return useCode(ctx, q, p, r, code, now)
}

// useCode accepts code when it is the code of a time step after the last
// one used (within one step of now), and records its step.
func useCode(ctx context.Context, q store.Querier, p store.Principal, r *totpRow, code string, now time.Time) error {
	code = strings.ReplaceAll(strings.TrimSpace(code), " ", "")
	if code == "" {
		return ErrSecondFactorNeeded
	}
	step := now.Unix() / 30
	for _, st := range []int64{step - 1, step, step + 1} {
		if st <= r.lastStep {
			continue
		}
		want, err := totp.GenerateCodeCustom(r.secret, time.Unix(st*30, 0), totpOpts)
		if err != nil {
			return fmt.Errorf("totp: %w", err)
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 {
			col, id := principalCol(p)
			res, err := q.Exec(ctx, `UPDATE totp_secrets SET last_step = ? WHERE `+col+` = ? AND last_step < ?`, st, id, st)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n == 0 {
				return ErrBadSecondFactor // a concurrent login used it
			}
			return nil
		}
	}
	return ErrBadSecondFactor
}

// AuthenticateWeb checks a web login: the main password (app passwords are
// for mail clients) and, when the principal's second factor is on, a code.
// It is throttled by the Limiter like Authenticate; a wrong code counts as
// a failed login. A missing code returns ErrSecondFactorNeeded, so that the
// page asks for it.
func (s *Service) AuthenticateWeb(ctx context.Context, username, password, code, remote string) (*Principal, error) {
	username = strings.ToLower(strings.TrimSpace(username))
	return s.limited(ctx, username, remote, func() (*Principal, error) {
		p, err := s.authenticate(ctx, username, password, true)
		if err != nil {
			return nil, err
		}
		if p.Method != AuthPassword {
			return nil, fmt.Errorf("%w: %w", ErrBadCredentials, ErrWebNeedsPassword)
		}
		on, err := s.TOTPEnabled(ctx, p.StorePrincipal())
		if err != nil || !on {
			return p, err
		}
		if strings.TrimSpace(code) == "" {
			return nil, ErrSecondFactorNeeded
		}
		if err := checkTOTP(ctx, s.DB.Q(), p.StorePrincipal(), code, s.now()); err != nil {
			return nil, err
		}
		return p, nil
	})
}
