package evidence

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
)

// OpenDest returns the sink a DEST names:
//
//   - https://ACCOUNT.blob.core.windows.net/CONTAINER[/PREFIX]?SAS, or any
//     other endpoint URL such as Azurite's
//     http://127.0.0.1:10000/devstoreaccount1/CONTAINER?SAS: a container
//     and an optional prefix, authorized by the SAS token in the query
//     (without one, by DefaultAzureCredential);
//   - azblob://ACCOUNT/CONTAINER[/PREFIX]: the container in the Azure
//     public cloud, authorized by azidentity.DefaultAzureCredential;
//   - anything else: a local directory.
//
// Errors never hold the SAS token.
func OpenDest(dest string) (Sink, error) {
	switch {
	case dest == "":
		return nil, errors.New("empty destination")
	case strings.HasPrefix(dest, "azblob://"):
		u, err := url.Parse(dest)
		if err != nil {
			return nil, fmt.Errorf("invalid destination %q: %w", Redact(dest), redactedError{err})
		}
		if u.Host == "" {
			return nil, fmt.Errorf("invalid destination %q: want azblob://ACCOUNT/CONTAINER", Redact(dest))
		}
		cont, prefix, _ := strings.Cut(strings.TrimPrefix(u.Path, "/"), "/")
		if cont == "" {
			return nil, fmt.Errorf("invalid destination %q: no container (want azblob://ACCOUNT/CONTAINER)", Redact(dest))
		}
		return containerSink(&url.URL{Scheme: "https", Host: u.Host + ".blob.core.windows.net", Path: "/" + cont}, prefix)
	case strings.HasPrefix(dest, "https://") || strings.HasPrefix(dest, "http://"):
		return SinkFromURL(dest)
	default:
		return NewDir(dest)
	}
}

// SinkFromSAS returns the sink for the Azure Blob container that the
// Sentinel playbook names with its storageaccount, blobcontainer and
// blobsastoken fields: https://ACCOUNT.blob.core.windows.net/CONTAINER?SAS.
func SinkFromSAS(account, containerName, sasToken string) (Sink, error) {
	if account == "" || containerName == "" {
		return nil, errors.New("storage account and container are required")
	}
	sasToken = strings.TrimPrefix(sasToken, "?")
	if sasToken == "" {
		return nil, errors.New("SAS token is required")
	}
	return SinkFromURL("https://" + account + ".blob.core.windows.net/" + url.PathEscape(containerName) + "?" + sasToken)
}

// SinkFromURL returns the sink for a container URL at any endpoint, with an
// optional prefix after the container: SCHEME://HOST/CONTAINER[/PREFIX]?SAS
// for a host name, and SCHEME://IP:PORT/ACCOUNT/CONTAINER[/PREFIX]?SAS for
// an IP address or localhost (the path style of Azurite and Azure Stack).
// Without a SAS token (no sig= in the query), requests are authorized by
// azidentity.DefaultAzureCredential.
func SinkFromURL(containerURL string) (Sink, error) {
	u, err := url.Parse(containerURL)
	if err != nil {
		return nil, fmt.Errorf("invalid blob URL %q: %w", Redact(containerURL), redactedError{err})
	}
	if u.Scheme != "https" && u.Scheme != "http" || u.Host == "" {
		return nil, fmt.Errorf("invalid blob URL %q: want https://ACCOUNT.blob.core.windows.net/CONTAINER?SAS", Redact(containerURL))
	}
	segs := strings.Split(strings.Trim(u.Path, "/"), "/")
	n := 1 // path segments that name the container
	if pathStyle(u.Host) {
		n = 2 // ACCOUNT/CONTAINER
	}
	if len(segs) < n || segs[n-1] == "" {
		return nil, fmt.Errorf("invalid blob URL %q: no container in the path", Redact(containerURL))
	}
	cu := *u
	cu.Path = "/" + strings.Join(segs[:n], "/")
	cu.RawPath = ""
	prefix := strings.Join(segs[n:], "/")
	if !u.Query().Has("sig") {
		return containerSink(&cu, prefix)
	}
	client, err := container.NewClientWithNoCredential(cu.String(), clientOptions())
	if err != nil {
		return nil, fmt.Errorf("blob container %s: %w", Redact(cu.String()), redactedError{err})
	}
	return newBlob(client, &cu, prefix), nil
}

// containerSink authorizes with DefaultAzureCredential: environment,
// workload identity, managed identity, Azure CLI, in that order.
func containerSink(cu *url.URL, prefix string) (Sink, error) {
	cred, err := azidentity.NewDefaultAzureCredential(nil)
	if err != nil {
		return nil, fmt.Errorf("azure credentials for %s: %w", cu, err)
	}
	client, err := container.NewClient(cu.String(), cred, clientOptions())
	if err != nil {
		return nil, fmt.Errorf("blob container %s: %w", cu, err)
	}
	return newBlob(client, cu, prefix), nil
}

// pathStyle reports whether a blob endpoint puts the account in the path:
// an IP address or localhost, as with Azurite.
func pathStyle(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	return host == "localhost" || net.ParseIP(host) != nil
}
