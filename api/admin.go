package api

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/kephs/kep/account"
	"github.com/kephs/kep/identity"
	"github.com/kephs/kep/store"
)

// Operators, their grants and API tokens of an account. Who may: the
// account's holder and its main operator (account.MayManage); an account
// the principal has no role on is not found, so that the two cannot be
// told apart.

// managed resolves {address} to an account the principal manages.
func (c *call) managed() (*store.Account, error) {
	a, err := store.GetAccountByAddress(c.ctx, c.s.Accounts.DB.Q(), strings.ToLower(c.r.PathValue("address")))
	if err != nil || !c.visible(a) {
		return nil, account.ErrNoSuchAccount
	}
	if !account.MayManage(c.p, a) {
		return nil, problemf(http.StatusForbidden, "not-manager", "Only the holder or main operator",
			"Bunu yalnızca hesap sahibi ya da ana işlem yetkilisi yapabilir.", "Only the account's holder or its main operator may do this.")
	}
	return a, nil
}

// visible says whether the principal has any standing on account a.
func (c *call) visible(a *store.Account) bool {
	switch c.p.Kind() {
	case account.Holder:
		return c.p.Account.ID == a.ID
	case account.Operator:
		return c.p.RoleOn(a.ID) != nil && (c.p.Within == 0 || c.p.Within == a.ID)
	}
	return false
}

// listOperators: GET /api/v1/accounts/{address}/operators.
func (s *Server) listOperators(c *call) error {
	a, err := c.managed()
	if err != nil {
		return err
	}
	rs, err := s.Accounts.Operators(c.ctx, a.ID)
	if err != nil {
		return err
	}
	list := []map[string]any{}
	for _, r := range rs {
		list = append(list, map[string]any{"id": r.ID, "name": r.Name, "tckn": identity.Mask(r.TCKN), "role": r.Role,
			"grants": account.Grant(r.Grants).String(), "added_at": r.AddedAt})
	}
	return c.json(http.StatusOK, map[string]any{"operators": list})
}

// setGrants: PUT /api/v1/accounts/{address}/operators/{id}/grants with
// {"grants": "read,send"} — the operator's grants become exactly these.
func (s *Server) setGrants(c *call) error {
	a, err := c.managed()
	if err != nil {
		return err
	}
	var body struct {
		Grants string `json:"grants"`
	}
	if err := c.readJSON(&body, 4096); err != nil {
		return err
	}
	want, err := account.ParseGrants(body.Grants)
	if err != nil {
		return problemf(http.StatusBadRequest, "bad-grants", "Unknown grant", "Yetkiler: read, send, delete, archive, sms-notice, email-notice (virgülle ayrılmış).", err.Error())
	}
	rs, err := s.Accounts.Operators(c.ctx, a.ID)
	if err != nil {
		return err
	}
	var role *store.OperatorRole
	for _, r := range rs {
		if strconv.FormatInt(r.ID, 10) == c.r.PathValue("id") {
			role = r
		}
	}
	if role == nil {
		return account.ErrNoSuchOperator
	}
	if account.Role(role.Role) == account.MainOperator && want != account.AllGrants {
		return problemf(http.StatusUnprocessableEntity, "main-operator-grants", "The main operator holds every grant",
			"Ana işlem yetkilisinin yetkileri daraltılamaz.", "The main operator holds every grant; appoint another main operator instead.")
	}
	have := account.Grant(role.Grants)
	if add := want &^ have; add != 0 {
		if role, err = s.Accounts.Grant(c.ctx, c.actor(), a.Address, role.TCKN, add); err != nil {
			return err
		}
	}
	if drop := have &^ want; drop != 0 {
		if role, err = s.Accounts.Revoke(c.ctx, c.actor(), a.Address, role.TCKN, drop); err != nil {
			return err
		}
	}
	return c.json(http.StatusOK, map[string]any{"id": role.ID, "grants": account.Grant(role.Grants).String()})
}

func tokenJSON(t *account.TokenRecord) map[string]any {
	out := map[string]any{"id": t.ID, "name": t.Name, "hint": t.Hint, "acts_as": t.ActsAs(), "created_by": t.CreatedBy, "created_at": t.CreatedAt}
	if t.OperatorID != 0 {
		out["operator_tckn"] = identity.Mask(t.OperatorTC)
	}
	for k, v := range map[string]time.Time{"last_used_at": t.LastUsedAt, "revoked_at": t.RevokedAt} {
		if !v.IsZero() {
			out[k] = v
		}
	}
	return out
}

// listTokens: GET /api/v1/accounts/{address}/tokens — for the holder and
// the main operator.
func (s *Server) listTokens(c *call) error {
	a, err := c.managed()
	if err != nil {
		return err
	}
	ts, err := s.Accounts.Tokens(c.ctx, c.p, a.Address)
	if err != nil {
		return err
	}
	list := []map[string]any{}
	for _, t := range ts {
		list = append(list, tokenJSON(t))
	}
	return c.json(http.StatusOK, map[string]any{"tokens": list})
}

// createToken: POST /api/v1/accounts/{address}/tokens with {"name": …,
// "operator_tckn": …} — the answer holds the token, shown this once.
func (s *Server) createToken(c *call) error {
	a, err := c.managed()
	if err != nil {
		return err
	}
	var body struct {
		Name         string `json:"name"`
		OperatorTCKN string `json:"operator_tckn"`
	}
	if err := c.readJSON(&body, 4096); err != nil {
		return err
	}
	t, secret, err := s.Accounts.CreateToken(c.ctx, c.actor(), c.p, a.Address, account.TokenRequest{Name: body.Name, OperatorTCKN: body.OperatorTCKN})
	if err != nil {
		if strings.Contains(err.Error(), "needs a name") || strings.Contains(err.Error(), "name one") {
			return problemf(http.StatusBadRequest, "bad-token-request", "Bad token request",
				"Anahtarın bir adı olmalı; işlem yetkilisi ancak bir yetkili adına (operator_tckn) anahtar yapabilir.", err.Error())
		}
		return err
	}
	out := tokenJSON(t)
	out["token"] = secret
	return c.json(http.StatusCreated, out)
}

// revokeToken: DELETE /api/v1/accounts/{address}/tokens/{id}.
func (s *Server) revokeToken(c *call) error {
	a, err := store.GetAccountByAddress(c.ctx, s.Accounts.DB.Q(), strings.ToLower(c.r.PathValue("address")))
	if err != nil || !c.visible(a) {
		return account.ErrNoSuchAccount
	}
	id, err := strconv.ParseInt(c.r.PathValue("id"), 10, 64)
	if err != nil {
		return account.ErrNoSuchToken
	}
	t, err := s.Accounts.RevokeToken(c.ctx, c.actor(), c.p, a.Address, id)
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, tokenJSON(t))
}
