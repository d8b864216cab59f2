package mailbox

// RetrievalWrite exposes the write function of retrieval evidence to the
// tests of running it twice.
var RetrievalWrite = retrievalWrite
