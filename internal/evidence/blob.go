package evidence

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
)

// Upload buffers: UploadStream holds at most blobConcurrency blocks of
// blobBlockSize in memory at once, whatever the size of the artifact.
const (
	blobBlockSize   = 4 << 20
	blobConcurrency = 2
)

// Blob is a sink in an Azure Blob Storage container, under a prefix.
type Blob struct {
	client *container.Client
	// display is the container URL without its query: no SAS.
	display string
	prefix  string // "" or ending in "/"
	// expiry is the SAS token's expiry time (se=), if it has one.
	expiry time.Time
}

func clientOptions() *container.ClientOptions {
	return &container.ClientOptions{ClientOptions: azcore.ClientOptions{
		Retry: policy.RetryOptions{
			MaxRetries:    5,
			RetryDelay:    500 * time.Millisecond,
			MaxRetryDelay: 30 * time.Second,
		},
		Telemetry: policy.TelemetryOptions{ApplicationID: "kdfir"},
	}}
}

func newBlob(client *container.Client, containerURL *url.URL, prefix string) *Blob {
	display := *containerURL
	display.RawQuery = ""
	display.Fragment = ""
	b := &Blob{client: client, display: display.String()}
	if se := containerURL.Query().Get("se"); se != "" {
		for _, layout := range []string{time.RFC3339, "2006-01-02T15:04Z", "2006-01-02"} {
			if t, err := time.Parse(layout, se); err == nil {
				b.expiry = t
				break
			}
		}
	}
	if p := strings.Trim(prefix, "/"); p != "" {
		b.prefix = p + "/"
	}
	return b
}

func (b *Blob) name(name string) (string, error) {
	c, err := cleanName(name)
	if err != nil {
		return "", err
	}
	return b.prefix + c, nil
}

// Put streams r into a new block blob. It fails if the blob exists.
func (b *Blob) Put(ctx context.Context, name string, r io.Reader) (int64, error) {
	n, err := b.name(name)
	if err != nil {
		return 0, err
	}
	cr := &countingReader{r: r}
	_, err = b.client.NewBlockBlobClient(n).UploadStream(ctx, cr, &blockblob.UploadStreamOptions{
		BlockSize:   blobBlockSize,
		Concurrency: blobConcurrency,
		AccessConditions: &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{
			IfNoneMatch: ptr(azcore.ETagAny),
		}},
	})
	if err != nil {
		return 0, storageError("upload "+name, err)
	}
	return cr.n, nil
}

// Open downloads a blob, resuming the download on transient errors.
func (b *Blob) Open(ctx context.Context, name string) (io.ReadCloser, error) {
	n, err := b.name(name)
	if err != nil {
		return nil, err
	}
	resp, err := b.client.NewBlobClient(n).DownloadStream(ctx, nil)
	if err != nil {
		return nil, storageError("download "+name, err)
	}
	return resp.NewRetryReader(ctx, &blob.RetryReaderOptions{MaxRetries: 5}), nil
}

// List lists the blobs under the prefix.
func (b *Blob) List(ctx context.Context) ([]string, error) {
	var names []string
	opts := &container.ListBlobsFlatOptions{}
	if b.prefix != "" {
		opts.Prefix = ptr(b.prefix)
	}
	pager := b.client.NewListBlobsFlatPager(opts)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return nil, storageError("list "+b.String(), err)
		}
		for _, item := range page.Segment.BlobItems {
			if item.Name != nil {
				names = append(names, strings.TrimPrefix(*item.Name, b.prefix))
			}
		}
	}
	sort.Strings(names)
	return names, nil
}

// Sub returns the sink for dir below this one, in the same container.
func (b *Blob) Sub(dir string) Sink {
	c := *b
	if d := strings.Trim(dir, "/"); d != "" {
		if cleaned, err := cleanName(d); err == nil {
			c.prefix = b.prefix + cleaned + "/"
		}
	}
	return &c
}

// Check refuses an expired SAS token before anything is sent.
func (b *Blob) Check(_ context.Context) error {
	if !b.expiry.IsZero() && time.Now().After(b.expiry) {
		return fmt.Errorf("the SAS token for %s expired at %s: ask for a new one", b.display, b.expiry.UTC().Format(time.RFC3339))
	}
	return nil
}

// String is the container URL and prefix, without the SAS token.
func (b *Blob) String() string {
	return strings.TrimSuffix(b.display, "/") + "/" + b.prefix
}

// StorageError is a failure of blob storage, with a message that never
// holds a SAS token.
type StorageError struct {
	Op         string
	StatusCode int    // HTTP status, 0 when there was no response
	Code       string // the service's error code, e.g. AuthenticationFailed
	msg        string
	err        error
}

func (e *StorageError) Error() string { return e.Op + ": " + e.msg }
func (e *StorageError) Unwrap() error { return e.err }

// storageError turns an azblob error into one line without secrets. Errors
// from azblob may hold request URLs with the SAS token in them.
func storageError(op string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: %w", op, redactedError{err})
	}
	se := &StorageError{Op: op, err: redactedError{err}}
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		se.msg = Redact(err.Error())
		return se
	}
	se.StatusCode, se.Code = re.StatusCode, re.ErrorCode
	se.msg = fmt.Sprintf("blob storage answered %d %s", re.StatusCode, re.ErrorCode)
	switch {
	case re.StatusCode == http.StatusForbidden:
		se.msg += " (the SAS token or credential is invalid, expired, or lacks permission)"
	case re.ErrorCode == "ContainerNotFound":
		se.msg += " (the container does not exist)"
	case re.ErrorCode == "BlobNotFound" || re.StatusCode == http.StatusNotFound:
		se.err = fmt.Errorf("%w: %w", fs.ErrNotExist, se.err)
	case re.StatusCode == http.StatusConflict || re.StatusCode == http.StatusPreconditionFailed:
		se.msg += " (the blob already exists; evidence is never overwritten)"
	}
	return se
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func ptr[T any](v T) *T { return &v }
