//go:build !((linux || darwin || freebsd) && (amd64 || arm64))

package pkcs11

import (
	"fmt"
	"runtime"
)

// pssParams is CK_RSA_PKCS_PSS_PARAMS.
type pssParams struct{ hashAlg, mgf, sLen uint }

func paramsBytes(p *pssParams) []byte { return nil }

// module stands for a loaded module on platforms this package does not
// load modules on (CK_ULONG and structure packing differ there).
type module struct{}

func (m *module) call(string, uint) error { return nil }
func (m *module) closeSession(uint) uint  { return 0 }
func (m *module) sign(_, _, _ uint, _, _ []byte, _ string) ([]byte, error) {
	return nil, ErrModule
}

// Open fails: PKCS#11 modules are loaded on Linux, macOS and FreeBSD on
// amd64 and arm64 only.
func Open(cfg Config) (*Key, error) {
	return nil, fmt.Errorf("%w: PKCS#11 tokens are supported on linux, darwin and freebsd (amd64, arm64), not %s/%s", ErrModule, runtime.GOOS, runtime.GOARCH)
}
