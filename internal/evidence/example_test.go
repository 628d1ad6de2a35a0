package evidence_test

import (
	"fmt"

	"github.com/kdfir/kdfir/internal/evidence"
)

// The Sentinel playbooks send storageaccount, blobcontainer and
// blobsastoken; SinkFromSAS turns them into a sink. Its String never
// shows the token.
func ExampleSinkFromSAS() {
	sink, err := evidence.SinkFromSAS("contosoforensics", "evidence", "?sv=2024-08-04&se=2099-01-01&sr=c&sp=racwl&sig=c2VjcmV0")
	if err != nil {
		panic(err)
	}
	fmt.Println(sink)
	fmt.Println(sink.Sub("prod/shop/web-7f9"))
	// Output:
	// https://contosoforensics.blob.core.windows.net/evidence/
	// https://contosoforensics.blob.core.windows.net/evidence/prod/shop/web-7f9/
}

// OpenDest reads the three forms of DEST that `kdfir collect --to` takes.
func ExampleOpenDest() {
	for _, dest := range []string{
		"/var/lib/kdfir/evidence",
		"http://127.0.0.1:10000/devstoreaccount1/evidence?sv=2024-08-04&se=2099-01-01&sr=c&sp=racwl&sig=c2VjcmV0",
		"azblob://contosoforensics/evidence",
	} {
		sink, err := evidence.OpenDest(dest)
		if err != nil {
			panic(err)
		}
		fmt.Println(sink)
	}
	// Output:
	// /var/lib/kdfir/evidence
	// http://127.0.0.1:10000/devstoreaccount1/evidence/
	// https://contosoforensics.blob.core.windows.net/evidence/
}

func ExampleRedact() {
	fmt.Println(evidence.Redact(`PUT "https://a.blob.core.windows.net/c/x?comp=block&sv=2024-08-04&sig=c2VjcmV0%3D": connection reset`))
	// Output:
	// PUT "https://a.blob.core.windows.net/c/x?comp=block&sv=2024-08-04&sig=REDACTED": connection reset
}
