//go:build (linux || darwin || freebsd) && (amd64 || arm64)

package pkcs11

import (
	"encoding/hex"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"unsafe"

	"github.com/ebitengine/purego"
)

// The C types of the PKCS#11 headers on LP64 platforms: CK_ULONG is a C
// unsigned long, 8 bytes like Go's uint; structures have their natural
// alignment (pkcs11.h packs only on Windows).
type attribute struct {
	typ uint
	val unsafe.Pointer
	n   uint
}

type mechanism struct {
	mech  uint
	param unsafe.Pointer
	n     uint
}

// pssParams is CK_RSA_PKCS_PSS_PARAMS.
type pssParams struct{ hashAlg, mgf, sLen uint }

func paramsBytes(p *pssParams) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(p)), unsafe.Sizeof(*p))
}

// initArgs is CK_C_INITIALIZE_ARGS: no mutex callbacks, the OS's locking.
type initArgs struct {
	create, destroy, lock, unlock unsafe.Pointer
	flags                         uint
	reserved                      unsafe.Pointer
}

// module is one loaded PKCS#11 library: the functions of its
// CK_FUNCTION_LIST this package calls.
type module struct {
	path            string
	getSlotList     func(present uint8, list *uint, n *uint) uint
	getTokenInfo    func(slot uint, info *byte) uint
	openSession     func(slot uint, flags uint, app unsafe.Pointer, notify unsafe.Pointer, h *uint) uint
	closeSessionFn  func(h uint) uint
	loginFn         func(h uint, user uint, pin *byte, n uint) uint
	getAttribute    func(h uint, obj uint, tmpl *attribute, n uint) uint
	findObjectsInit func(h uint, tmpl *attribute, n uint) uint
	findObjects     func(h uint, objs *uint, max uint, n *uint) uint
	findObjectsEnd  func(h uint) uint
	signInit        func(h uint, mech *mechanism, key uint) uint
	signFn          func(h uint, data *byte, n uint, sig *byte, sigLen *uint) uint
}

// functionList is CK_FUNCTION_LIST: a CK_VERSION, padded to a pointer's
// alignment, then the 68 function pointers of PKCS#11 v2.40.
type functionList struct {
	version [2]byte
	fns     [68]uintptr
}

// The index of each function in CK_FUNCTION_LIST (PKCS#11 v2.40 §5.2,
// pkcs11f.h order); the list starts with a CK_VERSION, padded to a pointer.
const (
	fnInitialize        = 0
	fnGetSlotList       = 4
	fnGetTokenInfo      = 6
	fnOpenSession       = 12
	fnCloseSession      = 13
	fnLogin             = 18
	fnGetAttributeValue = 24
	fnFindObjectsInit   = 26
	fnFindObjects       = 27
	fnFindObjectsFinal  = 28
	fnSignInit          = 42
	fnSign              = 43
)

var (
	modulesMu sync.Mutex
	modules   = map[string]*module{}
)

// load opens and initialises a module once per process: C_Initialize may be
// called only once until C_Finalize, and keys opened later share it.
func load(path string) (*module, error) {
	modulesMu.Lock()
	defer modulesMu.Unlock()
	if m := modules[path]; m != nil {
		return m, nil
	}
	lib, err := purego.Dlopen(path, purego.RTLD_NOW|purego.RTLD_LOCAL)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v (is the token's driver installed? SoftHSM2: apt-get install softhsm2)", ErrModule, path, err)
	}
	sym, err := purego.Dlsym(lib, "C_GetFunctionList")
	if err != nil {
		return nil, fmt.Errorf("%w: %s has no C_GetFunctionList; it is not a PKCS#11 module", ErrModule, path)
	}
	var getList func(list **functionList) uint
	purego.RegisterFunc(&getList, sym)
	var list *functionList
	if rv := getList(&list); rv != ckrOK || list == nil {
		return nil, fmt.Errorf("%w: %s: C_GetFunctionList: %s", ErrModule, path, rvName(rv))
	}
	fn := func(i int) uintptr { return list.fns[i] }
	m := &module{path: path}
	var initialize func(args *initArgs) uint
	purego.RegisterFunc(&initialize, fn(fnInitialize))
	purego.RegisterFunc(&m.getSlotList, fn(fnGetSlotList))
	purego.RegisterFunc(&m.getTokenInfo, fn(fnGetTokenInfo))
	purego.RegisterFunc(&m.openSession, fn(fnOpenSession))
	purego.RegisterFunc(&m.closeSessionFn, fn(fnCloseSession))
	purego.RegisterFunc(&m.loginFn, fn(fnLogin))
	purego.RegisterFunc(&m.getAttribute, fn(fnGetAttributeValue))
	purego.RegisterFunc(&m.findObjectsInit, fn(fnFindObjectsInit))
	purego.RegisterFunc(&m.findObjects, fn(fnFindObjects))
	purego.RegisterFunc(&m.findObjectsEnd, fn(fnFindObjectsFinal))
	purego.RegisterFunc(&m.signInit, fn(fnSignInit))
	purego.RegisterFunc(&m.signFn, fn(fnSign))
	args := &initArgs{flags: ckfOSLockingOK}
	if rv := initialize(args); rv != ckrOK && rv != ckrCryptokiAlreadyInitialized {
		return nil, fmt.Errorf("%w: %s: C_Initialize: %s", ErrModule, path, rvName(rv))
	}
	modules[path] = m
	return m, nil
}

func (m *module) call(name string, rv uint) error {
	if rv == ckrOK {
		return nil
	}
	return fmt.Errorf("%w: %s: %s", ErrFailed, name, rvName(rv))
}

func (m *module) closeSession(h uint) uint { return m.closeSessionFn(h) }

func (m *module) openSessionOn(slot uint, h *uint) uint {
	return m.openSession(slot, ckfSerialSession, nil, nil, h)
}

func (m *module) login(h uint, user uint, pin string) uint {
	b := []byte(pin)
	if len(b) == 0 {
		return m.loginFn(h, user, nil, 0)
	}
	rv := m.loginFn(h, user, &b[0], uint(len(b)))
	clear(b)
	return rv
}

// findToken returns the slot of the token labelled label (-1: none) and the
// labels of all tokens, for the error message.
func (m *module) findToken(label string) (int, []string, error) {
	var n uint
	if err := m.call("C_GetSlotList", m.getSlotList(1, nil, &n)); err != nil {
		return -1, nil, err
	}
	if n == 0 {
		return -1, nil, nil
	}
	slots := make([]uint, n)
	if err := m.call("C_GetSlotList", m.getSlotList(1, &slots[0], &n)); err != nil {
		return -1, nil, err
	}
	var labels []string
	found := -1
	info := make([]byte, 512) // CK_TOKEN_INFO is 208 bytes on LP64; the label comes first
	for _, s := range slots[:n] {
		if m.getTokenInfo(s, &info[0]) != ckrOK {
			continue
		}
		l := strings.TrimRight(string(info[:32]), " \x00")
		labels = append(labels, fmt.Sprintf("%q", l))
		if l == label && found < 0 {
			found = int(s)
		}
	}
	return found, labels, nil
}

// find returns the objects of class whose label is key, or, when none is,
// whose id is key in hex ("id:" before it forces the id).
func (m *module) find(session uint, class uint, key string) ([]uint, error) {
	label, id, byID := keyTemplate(key)
	if !byID {
		hs, err := m.search(session, class, ckaLabel, []byte(label))
		if err != nil || len(hs) > 0 {
			return hs, err
		}
		b, err := hex.DecodeString(key)
		if err != nil || len(b) == 0 {
			return nil, nil
		}
		id = b
	}
	return m.search(session, class, ckaID, id)
}

func (m *module) findAll(session uint, class uint) ([]uint, error) {
	return m.search(session, class, 0, nil)
}

// labels lists the labels of the objects of class, for error messages.
func (m *module) labels(session uint, class uint) ([]string, error) {
	hs, err := m.findAll(session, class)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, h := range hs {
		a, err := m.attributes(session, h, ckaLabel, ckaID)
		if err != nil {
			return nil, err
		}
		out = append(out, fmt.Sprintf("%q (id %x)", a[0], a[1]))
	}
	return out, nil
}

func (m *module) search(session uint, class uint, typ uint, value []byte) ([]uint, error) {
	var pin runtime.Pinner
	defer pin.Unpin()
	classVal := class
	pin.Pin(&classVal)
	tmpl := []attribute{{typ: ckaClass, val: unsafe.Pointer(&classVal), n: uint(unsafe.Sizeof(classVal))}}
	if typ != 0 {
		a := attribute{typ: typ, n: uint(len(value))}
		if len(value) > 0 {
			pin.Pin(&value[0])
			a.val = unsafe.Pointer(&value[0])
		}
		tmpl = append(tmpl, a)
	}
	if err := m.call("C_FindObjectsInit", m.findObjectsInit(session, &tmpl[0], uint(len(tmpl)))); err != nil {
		return nil, err
	}
	defer m.findObjectsEnd(session)
	var out []uint
	buf := make([]uint, 32)
	for {
		var n uint
		if err := m.call("C_FindObjects", m.findObjects(session, &buf[0], uint(len(buf)), &n)); err != nil {
			return nil, err
		}
		if n == 0 {
			return out, nil
		}
		out = append(out, buf[:n]...)
	}
}

// attributes reads the values of types of obj: first their lengths, then
// the values.
func (m *module) attributes(session, obj uint, types ...uint) ([][]byte, error) {
	tmpl := make([]attribute, len(types))
	for i, t := range types {
		tmpl[i].typ = t
	}
	if err := m.attributeCall(m.getAttribute(session, obj, &tmpl[0], uint(len(tmpl)))); err != nil {
		return nil, err
	}
	var pin runtime.Pinner
	defer pin.Unpin()
	out := make([][]byte, len(types))
	for i := range tmpl {
		if tmpl[i].n == ^uint(0) || tmpl[i].n == 0 { // CK_UNAVAILABLE_INFORMATION or empty
			tmpl[i].n = 0
			continue
		}
		out[i] = make([]byte, tmpl[i].n)
		pin.Pin(&out[i][0])
		tmpl[i].val = unsafe.Pointer(&out[i][0])
	}
	if err := m.attributeCall(m.getAttribute(session, obj, &tmpl[0], uint(len(tmpl)))); err != nil {
		return nil, err
	}
	for i := range tmpl {
		if out[i] != nil {
			out[i] = out[i][:tmpl[i].n]
		}
	}
	return out, nil
}

// attributeCall accepts C_GetAttributeValue's answer that some of the
// attributes are sensitive or do not exist for the object (§5.7): their
// lengths say so, and the others are filled in.
func (m *module) attributeCall(rv uint) error {
	if rv == ckrAttributeSensitive || rv == ckrAttributeTypeInvalid {
		return nil
	}
	return m.call("C_GetAttributeValue", rv)
}

// sign runs C_SignInit and C_Sign. A key with CKA_ALWAYS_AUTHENTICATE (the
// signature key of most qualified signature cards) needs the PIN again
// between the two, as a context-specific login (PKCS#11 v2.40 §4.9, §5.6):
// contextPIN is then given.
func (m *module) sign(session, key, mech uint, param, data []byte, contextPIN string) ([]byte, error) {
	var pin runtime.Pinner
	defer pin.Unpin()
	mc := mechanism{mech: mech}
	if len(param) > 0 {
		pin.Pin(&param[0])
		mc.param, mc.n = unsafe.Pointer(&param[0]), uint(len(param))
	}
	if err := m.call("C_SignInit", m.signInit(session, &mc, key)); err != nil {
		return nil, err
	}
	if contextPIN != "" {
		if rv := m.login(session, ckuContextSpecific, contextPIN); rv != ckrOK {
			return nil, fmt.Errorf("%w: the key asks for the PIN for each signature, and the token refused it: %s", ErrLogin, rvName(rv))
		}
	}
	sig := make([]byte, 1024) // RSA-8192 or ECDSA P-521 fit
	n := uint(len(sig))
	if err := m.call("C_Sign", m.signFn(session, &data[0], uint(len(data)), &sig[0], &n)); err != nil {
		return nil, err
	}
	return sig[:n], nil
}
