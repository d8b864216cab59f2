package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Account is a KEP mailbox owned by one identity. See package account for
// the rules; this is the row.
type Account struct {
	ID         int64
	Address    string
	Kind       string // person, company, public
	Capability string // send-receive, receive-only
	OwnerID    string // "TCKN:…", "VKN:…", "MERSIS:…", "DETSIS:…"
	OwnerName  string
	Status     string // applied, verified, active, suspended, closed
	QuotaBytes int64
	UsedBytes  int64
	Password   string // argon2id PHC string, empty when unset
	CreatedAt  time.Time
	VerifiedAt time.Time
	VerifiedBy string
	ClosedAt   time.Time
	ReopenedAt time.Time
}

const accountCols = `id, address, kind, capability, owner_id, owner_name, status, quota_bytes, used_bytes,
	COALESCE(password, ''), created_at, COALESCE(verified_at, 0), COALESCE(verified_by, ''), COALESCE(closed_at, 0), COALESCE(reopened_at, 0)`

type scanner interface{ Scan(...any) error }

func scanAccount(s scanner) (*Account, error) {
	var a Account
	var created, verified, closed, reopened int64
	err := s.Scan(&a.ID, &a.Address, &a.Kind, &a.Capability, &a.OwnerID, &a.OwnerName, &a.Status, &a.QuotaBytes, &a.UsedBytes,
		&a.Password, &created, &verified, &a.VerifiedBy, &closed, &reopened)
	if err != nil {
		return nil, mapErr(err)
	}
	a.CreatedAt, a.VerifiedAt, a.ClosedAt, a.ReopenedAt = FromMillis(created), FromMillis(verified), FromMillis(closed), FromMillis(reopened)
	return &a, nil
}

// IssueAddress reserves address for owner forever. It fails with ErrConflict
// when the address was ever issued before, to anyone.
func IssueAddress(ctx context.Context, q Querier, address, ownerID string, at time.Time) error {
	_, err := q.Exec(ctx, `INSERT INTO addresses (address, owner_id, issued_at) VALUES (?, ?, ?)`, address, ownerID, Millis(at))
	return err
}

// AddressOwner returns the identity an address was issued to.
func AddressOwner(ctx context.Context, q Querier, address string) (string, error) {
	var owner string
	err := q.QueryRow(ctx, `SELECT owner_id FROM addresses WHERE address = ?`, address).Scan(&owner)
	return owner, mapErr(err)
}

// AddressTaken reports whether an address was ever issued.
func AddressTaken(ctx context.Context, q Querier, address string) (bool, error) {
	_, err := AddressOwner(ctx, q, address)
	if err == ErrNotFound {
		return false, nil
	}
	return err == nil, err
}

// InsertAccount stores a new account; its address must have been issued to
// the same owner (the database checks).
func InsertAccount(ctx context.Context, q Querier, a *Account) error {
	id, err := InsertID(ctx, q, `INSERT INTO accounts (address, kind, capability, owner_id, owner_name, status, quota_bytes, used_bytes, password, created_at, verified_at, verified_by)
		VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?)`,
		a.Address, a.Kind, a.Capability, a.OwnerID, a.OwnerName, a.Status, a.QuotaBytes, nullStr(a.Password), Millis(a.CreatedAt), NullMillis(a.VerifiedAt), nullStr(a.VerifiedBy))
	if err != nil {
		return err
	}
	a.ID = id
	return nil
}

func nullStr(s string) sql.NullString { return sql.NullString{String: s, Valid: s != ""} }

// GetAccount loads an account by id.
func GetAccount(ctx context.Context, q Querier, id int64) (*Account, error) {
	return scanAccount(q.QueryRow(ctx, `SELECT `+accountCols+` FROM accounts WHERE id = ?`, id))
}

// GetAccountByAddress loads an account by its KEP address.
func GetAccountByAddress(ctx context.Context, q Querier, address string) (*Account, error) {
	return scanAccount(q.QueryRow(ctx, `SELECT `+accountCols+` FROM accounts WHERE address = ?`, address))
}

// ListAccounts lists accounts, optionally only those of one owner or status.
func ListAccounts(ctx context.Context, q Querier, ownerID, status string) ([]*Account, error) {
	s := `SELECT ` + accountCols + ` FROM accounts WHERE 1=1`
	var args []any
	if ownerID != "" {
		s += ` AND owner_id = ?`
		args = append(args, ownerID)
	}
	if status != "" {
		s += ` AND status = ?`
		args = append(args, status)
	}
	rows, err := q.Query(ctx, s+` ORDER BY id`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*Account
	for rows.Next() {
		a, err := scanAccount(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, mapErr(rows.Err())
}

// UpdateAccountState writes the mutable lifecycle fields of an account.
func UpdateAccountState(ctx context.Context, q Querier, a *Account) error {
	res, err := q.Exec(ctx, `UPDATE accounts SET status = ?, capability = ?, quota_bytes = ?, verified_at = ?, verified_by = ?, closed_at = ?, reopened_at = ? WHERE id = ?`,
		a.Status, a.Capability, a.QuotaBytes, NullMillis(a.VerifiedAt), nullStr(a.VerifiedBy), NullMillis(a.ClosedAt), NullMillis(a.ReopenedAt), a.ID)
	return affected(res, err)
}

// SetAccountPassword replaces an account's password hash.
func SetAccountPassword(ctx context.Context, q Querier, id int64, hash string) error {
	res, err := q.Exec(ctx, `UPDATE accounts SET password = ? WHERE id = ?`, nullStr(hash), id)
	return affected(res, err)
}

// AddAccountUsage changes an account's used bytes by delta and returns the
// new figure.
func AddAccountUsage(ctx context.Context, q Querier, id, delta int64) (int64, error) {
	var used int64
	err := q.QueryRow(ctx, `UPDATE accounts SET used_bytes = used_bytes + ? WHERE id = ? RETURNING used_bytes`, delta, id).Scan(&used)
	return used, mapErr(err)
}

func affected(res sql.Result, err error) error {
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

// AccountEvent is one step of an account's lifecycle.
type AccountEvent struct {
	ID        int64
	AccountID int64
	At        time.Time
	Event     string
	Detail    string
	FeeDays   int
}

// AddAccountEvent records a lifecycle step.
func AddAccountEvent(ctx context.Context, q Querier, e *AccountEvent) error {
	_, err := q.Exec(ctx, `INSERT INTO account_events (account_id, at, event, detail, fee_days) VALUES (?, ?, ?, ?, ?)`,
		e.AccountID, Millis(e.At), e.Event, e.Detail, e.FeeDays)
	return err
}

// ListAccountEvents returns an account's lifecycle, oldest first.
func ListAccountEvents(ctx context.Context, q Querier, accountID int64) ([]AccountEvent, error) {
	rows, err := q.Query(ctx, `SELECT id, account_id, at, event, detail, fee_days FROM account_events WHERE account_id = ? ORDER BY id`, accountID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []AccountEvent
	for rows.Next() {
		var e AccountEvent
		var at int64
		if err := rows.Scan(&e.ID, &e.AccountID, &at, &e.Event, &e.Detail, &e.FeeDays); err != nil {
			return nil, err
		}
		e.At = FromMillis(at)
		out = append(out, e)
	}
	return out, rows.Err()
}

// Certificate is a registered qualified e-signature certificate of an
// account's owner or of an operator.
type Certificate struct {
	ID          int64
	AccountID   int64 // one of AccountID, OperatorID is set
	OperatorID  int64
	Fingerprint string
	DER         []byte
	Subject     string
	NotBefore   time.Time
	NotAfter    time.Time
	AddedAt     time.Time
	RevokedAt   time.Time
}

func nullID(id int64) sql.NullInt64 { return sql.NullInt64{Int64: id, Valid: id != 0} }

// InsertCertificate registers a certificate.
func InsertCertificate(ctx context.Context, q Querier, c *Certificate) error {
	id, err := InsertID(ctx, q, `INSERT INTO certificates (account_id, operator_id, fingerprint, der, subject, not_before, not_after, added_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		nullID(c.AccountID), nullID(c.OperatorID), c.Fingerprint, c.DER, c.Subject, Millis(c.NotBefore), Millis(c.NotAfter), Millis(c.AddedAt))
	if err != nil {
		return err
	}
	c.ID = id
	return nil
}

// ListCertificates returns the live certificates of an account (operatorID 0)
// or of an operator (accountID 0).
func ListCertificates(ctx context.Context, q Querier, accountID, operatorID int64) ([]*Certificate, error) {
	col, id := "account_id", accountID
	if operatorID != 0 {
		col, id = "operator_id", operatorID
	}
	rows, err := q.Query(ctx, `SELECT id, COALESCE(account_id, 0), COALESCE(operator_id, 0), fingerprint, der, subject, not_before, not_after, added_at
		FROM certificates WHERE `+col+` = ? AND revoked_at IS NULL ORDER BY id`, id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*Certificate
	for rows.Next() {
		var c Certificate
		var nb, na, added int64
		if err := rows.Scan(&c.ID, &c.AccountID, &c.OperatorID, &c.Fingerprint, &c.DER, &c.Subject, &nb, &na, &added); err != nil {
			return nil, err
		}
		c.NotBefore, c.NotAfter, c.AddedAt = FromMillis(nb), FromMillis(na), FromMillis(added)
		out = append(out, &c)
	}
	return out, rows.Err()
}

// Operator is an işlem yetkilisi: a real person who acts for company or
// public-body accounts with their own credentials.
type Operator struct {
	ID        int64
	TCKN      string
	Name      string
	Password  string
	CreatedAt time.Time
}

// InsertOperator stores a new operator person.
func InsertOperator(ctx context.Context, q Querier, o *Operator) error {
	id, err := InsertID(ctx, q, `INSERT INTO operators (tckn, name, password, created_at) VALUES (?, ?, ?, ?)`, o.TCKN, o.Name, o.Password, Millis(o.CreatedAt))
	if err != nil {
		return err
	}
	o.ID = id
	return nil
}

func scanOperator(s scanner) (*Operator, error) {
	var o Operator
	var created int64
	if err := s.Scan(&o.ID, &o.TCKN, &o.Name, &o.Password, &created); err != nil {
		return nil, mapErr(err)
	}
	o.CreatedAt = FromMillis(created)
	return &o, nil
}

// GetOperator loads an operator by id.
func GetOperator(ctx context.Context, q Querier, id int64) (*Operator, error) {
	return scanOperator(q.QueryRow(ctx, `SELECT id, tckn, name, password, created_at FROM operators WHERE id = ?`, id))
}

// GetOperatorByTCKN loads an operator by TCKN.
func GetOperatorByTCKN(ctx context.Context, q Querier, tckn string) (*Operator, error) {
	return scanOperator(q.QueryRow(ctx, `SELECT id, tckn, name, password, created_at FROM operators WHERE tckn = ?`, tckn))
}

// SetOperatorPassword replaces an operator's password hash.
func SetOperatorPassword(ctx context.Context, q Querier, id int64, hash string) error {
	res, err := q.Exec(ctx, `UPDATE operators SET password = ? WHERE id = ?`, hash, id)
	return affected(res, err)
}

// OperatorRole is an operator's standing on one account.
type OperatorRole struct {
	ID         int64
	AccountID  int64
	OperatorID int64
	Role       string // main, sub
	Grants     uint32
	AddedAt    time.Time
	RemovedAt  time.Time
	// Joined for display.
	TCKN    string
	Name    string
	Address string
}

// InsertOperatorRole gives an operator a role on an account. A second live
// main operator, or a second live role of the same operator, is ErrConflict.
func InsertOperatorRole(ctx context.Context, q Querier, r *OperatorRole) error {
	id, err := InsertID(ctx, q, `INSERT INTO operator_roles (account_id, operator_id, role, grants, added_at) VALUES (?, ?, ?, ?, ?)`,
		r.AccountID, r.OperatorID, r.Role, int64(r.Grants), Millis(r.AddedAt))
	if err != nil {
		return err
	}
	r.ID = id
	return nil
}

const roleCols = `r.id, r.account_id, r.operator_id, r.role, r.grants, r.added_at, COALESCE(r.removed_at, 0), o.tckn, o.name, a.address
	FROM operator_roles r JOIN operators o ON o.id = r.operator_id JOIN accounts a ON a.id = r.account_id`

func scanRoles(rows *sql.Rows, err error) ([]*OperatorRole, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*OperatorRole
	for rows.Next() {
		var r OperatorRole
		var added, removed, grants int64
		if err := rows.Scan(&r.ID, &r.AccountID, &r.OperatorID, &r.Role, &grants, &added, &removed, &r.TCKN, &r.Name, &r.Address); err != nil {
			return nil, err
		}
		r.Grants = uint32(grants)
		r.AddedAt, r.RemovedAt = FromMillis(added), FromMillis(removed)
		out = append(out, &r)
	}
	return out, rows.Err()
}

// ListOperatorRoles returns the live roles on an account, main first.
func ListOperatorRoles(ctx context.Context, q Querier, accountID int64) ([]*OperatorRole, error) {
	return scanRoles(q.Query(ctx, `SELECT `+roleCols+` WHERE r.account_id = ? AND r.removed_at IS NULL ORDER BY r.role, r.id`, accountID))
}

// ListRolesOfOperator returns the live roles an operator holds.
func ListRolesOfOperator(ctx context.Context, q Querier, operatorID int64) ([]*OperatorRole, error) {
	return scanRoles(q.Query(ctx, `SELECT `+roleCols+` WHERE r.operator_id = ? AND r.removed_at IS NULL ORDER BY r.id`, operatorID))
}

// GetOperatorRole returns the live role of an operator on an account.
func GetOperatorRole(ctx context.Context, q Querier, accountID, operatorID int64) (*OperatorRole, error) {
	rs, err := scanRoles(q.Query(ctx, `SELECT `+roleCols+` WHERE r.account_id = ? AND r.operator_id = ? AND r.removed_at IS NULL`, accountID, operatorID))
	if err != nil {
		return nil, err
	}
	if len(rs) == 0 {
		return nil, ErrNotFound
	}
	return rs[0], nil
}

// SetOperatorGrants replaces the grants of a live role.
func SetOperatorGrants(ctx context.Context, q Querier, roleID int64, grants uint32) error {
	res, err := q.Exec(ctx, `UPDATE operator_roles SET grants = ? WHERE id = ? AND removed_at IS NULL`, int64(grants), roleID)
	return affected(res, err)
}

// RemoveOperatorRole ends a live role; the row stays as history.
func RemoveOperatorRole(ctx context.Context, q Querier, roleID int64, at time.Time) error {
	res, err := q.Exec(ctx, `UPDATE operator_roles SET removed_at = ? WHERE id = ? AND removed_at IS NULL`, Millis(at), roleID)
	return affected(res, err)
}

// Principal names who holds a credential: an account or an operator.
type Principal struct {
	AccountID  int64
	OperatorID int64
}

func (p Principal) cols() (string, int64) {
	if p.OperatorID != 0 {
		return "operator_id", p.OperatorID
	}
	return "account_id", p.AccountID
}

// AppPassword is a password for one mail client.
type AppPassword struct {
	ID        int64
	Principal Principal
	Name      string
	Password  string // argon2id hash
	CreatedAt time.Time
}

// InsertAppPassword stores an app password hash.
func InsertAppPassword(ctx context.Context, q Querier, p *AppPassword) error {
	id, err := InsertID(ctx, q, `INSERT INTO app_passwords (account_id, operator_id, name, password, created_at) VALUES (?, ?, ?, ?, ?)`,
		nullID(p.Principal.AccountID), nullID(p.Principal.OperatorID), p.Name, p.Password, Millis(p.CreatedAt))
	if err != nil {
		return err
	}
	p.ID = id
	return nil
}

// ListAppPasswords returns the live app passwords of a principal.
func ListAppPasswords(ctx context.Context, q Querier, p Principal) ([]*AppPassword, error) {
	col, id := p.cols()
	rows, err := q.Query(ctx, `SELECT id, name, password, created_at FROM app_passwords WHERE `+col+` = ? AND revoked_at IS NULL ORDER BY id`, id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*AppPassword
	for rows.Next() {
		ap := AppPassword{Principal: p}
		var created int64
		if err := rows.Scan(&ap.ID, &ap.Name, &ap.Password, &created); err != nil {
			return nil, err
		}
		ap.CreatedAt = FromMillis(created)
		out = append(out, &ap)
	}
	return out, rows.Err()
}

// RevokeCredentials revokes every app password, session and API token of
// a principal and returns how many were revoked: a password recovered
// after a compromise must not leave a door the intruder made.
func RevokeCredentials(ctx context.Context, q Querier, p Principal, at time.Time) (int64, error) {
	col, id := p.cols()
	var total int64
	for _, table := range []string{"app_passwords", "sessions", "api_tokens"} {
		where := col + ` = ? AND revoked_at IS NULL`
		if table == "api_tokens" && col == "account_id" {
			where += ` AND operator_id IS NULL` // the holder's own; an operator's tokens are theirs
		}
		res, err := q.Exec(ctx, `UPDATE `+table+` SET revoked_at = ? WHERE `+where, Millis(at), id)
		if err != nil {
			return total, err
		}
		n, _ := res.RowsAffected()
		total += n
	}
	return total, nil
}

// Session is a web or API login.
type Session struct {
	ID        string // SHA-256 of the token, hex
	Principal Principal
	CreatedAt time.Time
	ExpiresAt time.Time
	RevokedAt time.Time
}

// InsertSession stores a session.
func InsertSession(ctx context.Context, q Querier, s *Session) error {
	_, err := q.Exec(ctx, `INSERT INTO sessions (id, account_id, operator_id, created_at, expires_at) VALUES (?, ?, ?, ?, ?)`,
		s.ID, nullID(s.Principal.AccountID), nullID(s.Principal.OperatorID), Millis(s.CreatedAt), Millis(s.ExpiresAt))
	return err
}

// GetSession loads a session by id.
func GetSession(ctx context.Context, q Querier, id string) (*Session, error) {
	var s Session
	var created, expires, revoked int64
	err := q.QueryRow(ctx, `SELECT id, COALESCE(account_id, 0), COALESCE(operator_id, 0), created_at, expires_at, COALESCE(revoked_at, 0) FROM sessions WHERE id = ?`, id).
		Scan(&s.ID, &s.Principal.AccountID, &s.Principal.OperatorID, &created, &expires, &revoked)
	if err != nil {
		return nil, mapErr(err)
	}
	s.CreatedAt, s.ExpiresAt, s.RevokedAt = FromMillis(created), FromMillis(expires), FromMillis(revoked)
	return &s, nil
}

// AuditRecord is one line of the audit trail.
type AuditRecord struct {
	ID     int64
	At     time.Time
	Actor  string // who: "cli:root", "operator:<TCKN>", "account:<address>", "system"
	Action string // what: "account.create", "operator.grant", …
	Target string
	Detail string
	Remote string // from where: IP address, "cli"
}

// Audit appends a record to the audit trail.
func Audit(ctx context.Context, q Querier, r *AuditRecord) error {
	if r.At.IsZero() {
		return fmt.Errorf("store: audit record without time")
	}
	_, err := q.Exec(ctx, `INSERT INTO audit (at, actor, action, target, detail, remote) VALUES (?, ?, ?, ?, ?, ?)`,
		Millis(r.At), r.Actor, r.Action, r.Target, r.Detail, r.Remote)
	return err
}

// ListAudit returns audit records about target (all when empty), newest last.
func ListAudit(ctx context.Context, q Querier, target string, limit int) ([]AuditRecord, error) {
	s := `SELECT id, at, actor, action, target, detail, remote FROM audit`
	var args []any
	if target != "" {
		s += ` WHERE target = ?`
		args = append(args, target)
	}
	s += ` ORDER BY id DESC`
	if limit > 0 {
		s += fmt.Sprintf(` LIMIT %d`, limit)
	}
	rows, err := q.Query(ctx, s, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []AuditRecord
	for rows.Next() {
		var r AuditRecord
		var at int64
		if err := rows.Scan(&r.ID, &at, &r.Actor, &r.Action, &r.Target, &r.Detail, &r.Remote); err != nil {
			return nil, err
		}
		r.At = FromMillis(at)
		out = append(out, r)
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, rows.Err()
}
