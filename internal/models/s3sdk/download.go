package s3sdk

import (
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// partRetries is how often one part's download is tried before the whole
// get fails: the SDK retries failed requests, this a body cut short.
const partRetries = 3

// rangedReader reads one object in order while up to concurrency ranged
// GETs of partSize bytes fetch the parts ahead of the reader into reused
// buffers: (concurrency+1) parts of memory, one copy per byte.
type rangedReader struct {
	cancel context.CancelFunc
	order  chan chan part // the parts' results, in order
	free   chan []byte    // buffers to reuse
	cur    part
	off    int
	err    error
	wg     sync.WaitGroup
}

type part struct {
	buf []byte
	err error
}

func newRangedReader(ctx context.Context, client *s3.Client, bucket, key, etag string, size int64) *rangedReader {
	ctx, cancel := context.WithCancel(ctx)
	r := &rangedReader{
		cancel: cancel,
		order:  make(chan chan part, concurrency),
		free:   make(chan []byte, concurrency+1),
	}
	for range concurrency + 1 {
		r.free <- nil // allocated on first use, so small objects stay small
	}
	r.wg.Go(func() {
		defer close(r.order)
		for start := int64(0); start < size; start += partSize {
			n := min(partSize, size-start)
			var buf []byte
			select {
			case buf = <-r.free:
			case <-ctx.Done():
				return
			}
			if cap(buf) < int(n) {
				buf = make([]byte, partSize)
			}
			buf = buf[:n]
			res := make(chan part, 1)
			select {
			case r.order <- res:
			case <-ctx.Done():
				return
			}
			r.wg.Go(func() { res <- fetchPart(ctx, client, bucket, key, etag, start, buf) })
		}
	})
	return r
}

// fetchPart reads bytes start..start+len(buf)-1 of the object into buf.
func fetchPart(ctx context.Context, client *s3.Client, bucket, key, etag string, start int64, buf []byte) part {
	var err error
	for range partRetries {
		var out *s3.GetObjectOutput
		out, err = client.GetObject(ctx, &s3.GetObjectInput{
			Bucket:  aws.String(bucket),
			Key:     aws.String(key),
			Range:   aws.String(fmt.Sprintf("bytes=%d-%d", start, start+int64(len(buf))-1)),
			IfMatch: ifMatch(etag), // every part from the same version
		})
		if err != nil {
			return part{buf: buf, err: err} // the SDK has retried what can be retried
		}
		_, err = io.ReadFull(out.Body, buf)
		out.Body.Close()
		if err == nil || ctx.Err() != nil {
			break
		}
	}
	return part{buf: buf, err: err}
}

func (r *rangedReader) Read(p []byte) (int, error) {
	for r.off == len(r.cur.buf) {
		if r.err != nil {
			return 0, r.err
		}
		if r.cur.buf != nil {
			r.free <- r.cur.buf
			r.cur = part{}
		}
		next, ok := <-r.order
		if !ok {
			r.err = io.EOF
			return 0, r.err
		}
		r.cur, r.off = <-next, 0
		if r.cur.err != nil {
			r.err = r.cur.err
			return 0, r.err
		}
	}
	n := copy(p, r.cur.buf[r.off:])
	r.off += n
	return n, nil
}

// Close stops the downloads and waits for them.
func (r *rangedReader) Close() error {
	r.cancel()
	r.wg.Wait()
	return nil
}

func ifMatch(etag string) *string {
	if etag == "" {
		return nil
	}
	return aws.String(etag)
}
