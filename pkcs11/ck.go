package pkcs11

import "fmt"

// Constants of the PKCS#11 v2.40 headers (pkcs11t.h) this package uses.
const (
	ckrOK                         = 0x000
	ckrPINIncorrect               = 0x0A0
	ckrPINLocked                  = 0x0A4
	ckrUserAlreadyLoggedIn        = 0x100
	ckrCryptokiAlreadyInitialized = 0x191
	ckfSerialSession              = 0x4
	ckfOSLockingOK                = 0x2
	ckuUser                       = 1
	ckuContextSpecific            = 2
	ckrAttributeSensitive         = 0x011
	ckrAttributeTypeInvalid       = 0x012
	ckaAlwaysAuthenticate         = 0x202
	ckoCertificate                = 1
	ckoPublicKey                  = 2
	ckoPrivateKey                 = 3
	ckaClass                      = 0x000
	ckaLabel                      = 0x003
	ckaValue                      = 0x011
	ckaKeyType                    = 0x100
	ckaID                         = 0x102
	ckaModulus                    = 0x120
	ckaPublicExponent             = 0x122
	ckaECParams                   = 0x180
	ckaECPoint                    = 0x181
	ckkRSA                        = 0x000
	ckkEC                         = 0x003
	ckmRSAPKCS                    = 0x001
	ckmRSAPKCSPSS                 = 0x00D
	ckmECDSA                      = 0x1041
	ckmSHA256                     = 0x250
	ckmSHA384                     = 0x260
	ckmSHA512                     = 0x270
	ckgMGF1SHA256                 = 0x2
	ckgMGF1SHA384                 = 0x3
	ckgMGF1SHA512                 = 0x4
)

var rvNames = map[uint]string{
	0x001: "CKR_CANCEL", 0x005: "CKR_GENERAL_ERROR", 0x006: "CKR_FUNCTION_FAILED", 0x007: "CKR_ARGUMENTS_BAD",
	0x012: "CKR_ATTRIBUTE_TYPE_INVALID", 0x030: "CKR_DEVICE_ERROR", 0x031: "CKR_DEVICE_MEMORY", 0x032: "CKR_DEVICE_REMOVED",
	0x060: "CKR_KEY_HANDLE_INVALID", 0x068: "CKR_KEY_FUNCTION_NOT_PERMITTED", 0x070: "CKR_MECHANISM_INVALID",
	0x071: "CKR_MECHANISM_PARAM_INVALID", 0x0A0: "CKR_PIN_INCORRECT", 0x0A4: "CKR_PIN_LOCKED", 0x0B3: "CKR_SESSION_HANDLE_INVALID",
	0x0E0: "CKR_TOKEN_NOT_PRESENT", 0x101: "CKR_USER_NOT_LOGGED_IN", 0x150: "CKR_BUFFER_TOO_SMALL",
	0x190: "CKR_CRYPTOKI_NOT_INITIALIZED", 0x191: "CKR_CRYPTOKI_ALREADY_INITIALIZED", 0x0D0: "CKR_TEMPLATE_INCOMPLETE",
	0x021: "CKR_DATA_LEN_RANGE", 0x0A1: "CKR_PIN_INVALID", 0x0A2: "CKR_PIN_LEN_RANGE",
}

// rvName names a CK_RV for messages.
func rvName(rv uint) string {
	if n, ok := rvNames[rv]; ok {
		return fmt.Sprintf("%s (0x%x)", n, rv)
	}
	return fmt.Sprintf("CK_RV 0x%x", rv)
}
