package submission

import (
	"errors"

	"github.com/emersion/go-sasl"
)

// loginServer is the LOGIN SASL mechanism (draft-murchison-sasl-login),
// which Outlook and older clients still use: the server asks for the user
// name, then the password.
type loginServer struct {
	auth     func(username, password string) error
	step     int
	username string
}

func newLoginServer(auth func(username, password string) error) sasl.Server {
	return &loginServer{auth: auth}
}

func (s *loginServer) Next(response []byte) (challenge []byte, done bool, err error) {
	switch s.step {
	case 0:
		s.step = 1
		if len(response) == 0 { // no initial response
			return []byte("Username:"), false, nil
		}
		fallthrough
	case 1:
		s.username = string(response)
		s.step = 2
		return []byte("Password:"), false, nil
	case 2:
		s.step = 3
		return nil, true, s.auth(s.username, string(response))
	}
	return nil, true, errors.New("unexpected client response")
}
