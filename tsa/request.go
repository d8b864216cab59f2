package tsa

import (
	"crypto"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"math/big"
)

// Request is an RFC 3161 TimeStampReq (§2.4.1), as the Client sends it and
// Server.Stamp answers it in-process.
type Request struct {
	HashAlgorithm crypto.Hash // of the message imprint
	HashedMessage []byte
	// Certificates is certReq: the TSA must put its certificate in the token.
	Certificates bool
	// TSAPolicyOID is reqPolicy; empty for the TSA's default.
	TSAPolicyOID asn1.ObjectIdentifier
	Nonce        *big.Int // nil for none
	Extensions   []pkix.Extension
}

// Marshal encodes r in DER.
func (r *Request) Marshal() ([]byte, error) {
	oid, ok := hashOIDs[r.HashAlgorithm]
	if !ok {
		return nil, fmt.Errorf("tsa: no identifier for hash %v", r.HashAlgorithm)
	}
	return asn1.Marshal(timeStampReq{
		Version:        1,
		MessageImprint: messageImprint{HashAlgorithm: pkix.AlgorithmIdentifier{Algorithm: oid, Parameters: asn1NULL}, HashedMessage: r.HashedMessage},
		ReqPolicy:      r.TSAPolicyOID,
		Nonce:          r.Nonce,
		CertReq:        r.Certificates,
		Extensions:     r.Extensions,
	})
}

// ParseRequest reads a DER TimeStampReq.
func ParseRequest(der []byte) (*Request, error) {
	var req timeStampReq
	rest, err := asn1.Unmarshal(der, &req)
	if err != nil || len(rest) > 0 {
		return nil, malformed("not a DER TimeStampReq (RFC 3161 §2.4.1): %s", errOrTrailing(err, rest))
	}
	h := hashFromOID(req.MessageImprint.HashAlgorithm.Algorithm)
	if h == 0 {
		return nil, malformed("message imprint uses unknown hash algorithm %s", req.MessageImprint.HashAlgorithm.Algorithm)
	}
	return &Request{HashAlgorithm: h, HashedMessage: req.MessageImprint.HashedMessage, Certificates: req.CertReq,
		TSAPolicyOID: req.ReqPolicy, Nonce: req.Nonce, Extensions: req.Extensions}, nil
}

// Status is a PKIStatus (RFC 3161 §2.4.2).
type Status int

// PKIStatus values.
const (
	Granted                Status = 0
	GrantedWithMods        Status = 1
	Rejection              Status = 2
	Waiting                Status = 3
	RevocationWarning      Status = 4
	RevocationNotification Status = 5
)

func (s Status) String() string {
	switch s {
	case Granted:
		return "granted"
	case GrantedWithMods:
		return "grantedWithMods"
	case Rejection:
		return "rejection"
	case Waiting:
		return "waiting"
	case RevocationWarning:
		return "revocationWarning"
	case RevocationNotification:
		return "revocationNotification"
	}
	return fmt.Sprintf("status %d", int(s))
}

// FailureInfo is a PKIFailureInfo bit number (RFC 3161 §2.4.2).
type FailureInfo int

// PKIFailureInfo bits.
const (
	BadAlgorithm        FailureInfo = 0
	BadRequest          FailureInfo = 2
	BadDataFormat       FailureInfo = 5
	TimeNotAvailable    FailureInfo = 14
	UnacceptedPolicy    FailureInfo = 15
	UnacceptedExtension FailureInfo = 16
	AddInfoNotAvailable FailureInfo = 17
	SystemFailure       FailureInfo = 25
)

// String is the bit's meaning in words.
func (f FailureInfo) String() string {
	switch f {
	case BadAlgorithm:
		return "unrecognized or unsupported algorithm identifier"
	case BadRequest:
		return "transaction not permitted or supported"
	case BadDataFormat:
		return "the data submitted has the wrong format"
	case TimeNotAvailable:
		return "the TSA's time source is not available"
	case UnacceptedPolicy:
		return "the requested TSA policy is not supported by the TSA"
	case UnacceptedExtension:
		return "the requested extension is not supported by the TSA"
	case AddInfoNotAvailable:
		return "the additional information requested could not be understood or is not available"
	case SystemFailure:
		return "the request cannot be handled due to system failure"
	}
	return fmt.Sprintf("failure bit %d", int(f))
}
