package web

import (
	"encoding/base64"
	"errors"
	"html/template"
	"net/http"
	"strconv"
	"strings"
	"time"

	qrcode "github.com/skip2/go-qrcode"

	"github.com/kephs/kep/account"
	"github.com/kephs/kep/store"
)

// The security page: the second factor (TOTP) and the sessions. Enrolment
// shows the key as a QR code (a data: image, which the CSP allows) and as
// text, and turns the factor on only when the user types a code made from
// it, so that a scan that failed cannot lock anyone out.

type securityData struct {
	TOTPOn       bool
	QR           template.URL // data:image/png;base64,…
	Secret       string
	AppPasswords []*store.AppPassword
	NewPassword  string // an app password just made, shown once
	NewName      string
}

func (s *Server) actor(r *http.Request, c *reqCtx) account.Actor {
	return account.Actor{Name: "web:" + c.p.Name(), Remote: account.Source(r.RemoteAddr)}
}

// label names the principal in the authenticator app: the address, or
// for an operator their name (never a TCKN).
func label(p *account.Principal) string {
	if p.Operator != nil {
		return p.Operator.Name
	}
	return p.Account.Address
}

func (s *Server) securityPage(w http.ResponseWriter, r *http.Request, c *reqCtx) {
	s.renderSecurity(w, r, c, http.StatusOK, nil, "", "")
}

func (s *Server) renderSecurity(w http.ResponseWriter, r *http.Request, c *reqCtx, status int, en *account.TOTPEnrolment, flash, errText string) {
	s.renderSecurityData(w, r, c, status, &securityData{}, en, flash, errText)
}

func (s *Server) renderSecurityData(w http.ResponseWriter, r *http.Request, c *reqCtx, status int, d *securityData, en *account.TOTPEnrolment, flash, errText string) {
	on, err := s.Accounts.TOTPEnabled(r.Context(), c.p.StorePrincipal())
	if err != nil {
		s.internal(w, r, c, err)
		return
	}
	d.TOTPOn = on
	if d.AppPasswords, err = s.Accounts.AppPasswords(r.Context(), c.p.StorePrincipal()); err != nil {
		s.internal(w, r, c, err)
		return
	}
	if en != nil {
		png, err := qrcode.Encode(en.URL, qrcode.Medium, 256)
		if err != nil {
			s.internal(w, r, c, err)
			return
		}
		d.QR = template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(png))
		d.Secret = en.Secret
	}
	pg := &page{Title: c.t("security"), Flash: flash, Error: errText, Data: d}
	if accts, err := s.Mailbox.Visible(r.Context(), c.p); err == nil && len(accts) > 0 {
		if n, err := s.nav(r.Context(), c, accts[0], ""); err == nil {
			pg.Nav = n
		}
	}
	s.render(w, r, c, status, "security", pg)
}

func (s *Server) totpBegin(w http.ResponseWriter, r *http.Request, c *reqCtx) {
	en, err := s.Accounts.BeginTOTP(r.Context(), s.actor(r, c), c.p.StorePrincipal(), label(c.p))
	if errors.Is(err, account.ErrTOTPOn) {
		s.renderSecurity(w, r, c, http.StatusConflict, nil, "", totpReason(c, err))
		return
	}
	if err != nil {
		s.internal(w, r, c, err)
		return
	}
	s.renderSecurity(w, r, c, http.StatusOK, en, "", "")
}

func (s *Server) totpConfirm(w http.ResponseWriter, r *http.Request, c *reqCtx) {
	err := s.Accounts.ConfirmTOTP(r.Context(), s.actor(r, c), c.p.StorePrincipal(), r.PostFormValue("kod"))
	s.totpResult(w, r, c, err, "totp.done")
}

func (s *Server) totpDisable(w http.ResponseWriter, r *http.Request, c *reqCtx) {
	err := s.Accounts.DisableTOTP(r.Context(), s.actor(r, c), c.p.StorePrincipal(), r.PostFormValue("kod"))
	s.totpResult(w, r, c, err, "totp.gone")
}

func (s *Server) totpResult(w http.ResponseWriter, r *http.Request, c *reqCtx, err error, done string) {
	var te *account.ThrottledError
	switch {
	case errors.As(err, &te): // wrong codes count as failed logins (account.codeAttempt)
		w.Header().Set("Retry-After", retryAfter(te.RetryAfter()))
		s.renderSecurity(w, r, c, http.StatusTooManyRequests, nil, "", c.t("err.throttled", te.RetryAfter().Round(time.Second)))
	case err == nil:
		s.renderSecurity(w, r, c, http.StatusOK, nil, c.t(done), "")
	case errors.Is(err, account.ErrBadSecondFactor), errors.Is(err, account.ErrSecondFactorNeeded),
		errors.Is(err, account.ErrNoEnrolment), errors.Is(err, account.ErrTOTPOn), errors.Is(err, account.ErrTOTPOff):
		s.renderSecurity(w, r, c, http.StatusUnprocessableEntity, nil, "", totpReason(c, err))
	default:
		s.internal(w, r, c, err)
	}
}

// appPasswordAdd makes an app password for a mail client and shows it
// once; only its hash is kept.
func (s *Server) appPasswordAdd(w http.ResponseWriter, r *http.Request, c *reqCtx) {
	name := strings.TrimSpace(r.PostFormValue("ad"))
	if name == "" || len(name) > 100 {
		s.renderSecurity(w, r, c, http.StatusUnprocessableEntity, nil, "", c.t("app.err.name"))
		return
	}
	pw, err := s.Accounts.AddAppPassword(r.Context(), s.actor(r, c), c.p.StorePrincipal(), name)
	if err != nil {
		s.internal(w, r, c, err)
		return
	}
	s.renderSecurityData(w, r, c, http.StatusOK, &securityData{NewPassword: pw, NewName: name}, nil, "", "")
}

func (s *Server) appPasswordRevoke(w http.ResponseWriter, r *http.Request, c *reqCtx) {
	id, _ := strconv.ParseInt(r.PostFormValue("id"), 10, 64)
	err := s.Accounts.RevokeAppPassword(r.Context(), s.actor(r, c), c.p.StorePrincipal(), id)
	switch {
	case err == nil:
		s.renderSecurity(w, r, c, http.StatusOK, nil, c.t("app.revoked"), "")
	case errors.Is(err, account.ErrNoAppPassword):
		s.renderSecurity(w, r, c, http.StatusNotFound, nil, "", c.t("app.err.none"))
	default:
		s.internal(w, r, c, err)
	}
}

// endSessions logs the principal out everywhere, this browser included.
func (s *Server) endSessions(w http.ResponseWriter, r *http.Request, c *reqCtx) {
	if _, err := s.Accounts.EndSessions(r.Context(), s.actor(r, c), c.p.StorePrincipal()); err != nil {
		s.internal(w, r, c, err)
		return
	}
	setCookie(w, cookieSession, "", time.Time{}, true)
	http.Redirect(w, r, pathLogin, http.StatusSeeOther)
}

// totpReason says what went wrong with the second factor in the page's
// language.
func totpReason(c *reqCtx, err error) string {
	for _, k := range []struct {
		err error
		key string
	}{{account.ErrBadSecondFactor, "totp.err.bad"}, {account.ErrSecondFactorNeeded, "totp.err.needed"},
		{account.ErrNoEnrolment, "totp.err.noenrol"}, {account.ErrTOTPOn, "totp.err.on"}, {account.ErrTOTPOff, "totp.err.off"}} {
		if errors.Is(err, k.err) {
			return c.t(k.key)
		}
	}
	return err.Error()
}
