package awslite

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// A ResponseError is an AWS answer other than success: its HTTP status
// and, when the body says, the error code and message.
type ResponseError struct {
	Status  int
	Code    string // NoSuchKey, PreconditionFailed, ValidationError ...; "" when there was no body (HEAD)
	Message string
}

func (e *ResponseError) Error() string {
	s := fmt.Sprintf("HTTP %d", e.Status)
	if e.Code != "" {
		s += " " + e.Code
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// A SendError is a request that got no answer: the endpoint is down,
// unreachable, or the context ended.
type SendError struct {
	Host string
	Err  error
}

func (e *SendError) Error() string { return fmt.Sprintf("send to %s: %v", e.Host, e.Err) }
func (e *SendError) Unwrap() error { return e.Err }

// client signs and sends requests for one service and region.
type client struct {
	service, region string
	creds           *Provider
	http            *http.Client
	now             func() time.Time
}

func (c *client) httpClient() *http.Client {
	if c.http != nil {
		return c.http
	}
	return http.DefaultClient
}

// do signs req (payloadHash: the hex SHA-256 of its body) and sends it.
// A status of 300 or more is a *ResponseError read from the body, which
// is then closed; else the caller closes the body.
func (c *client) do(req *http.Request, payloadHash string) (*http.Response, error) {
	creds, err := c.creds.Retrieve(req.Context())
	if err != nil {
		return nil, err
	}
	now := time.Now
	if c.now != nil {
		now = c.now
	}
	Sign(req, creds, c.region, c.service, payloadHash, now())
	resp, err := c.httpClient().Do(req)
	if err != nil {
		var ue interface{ Unwrap() error }
		if errors.As(err, &ue) && ue.Unwrap() != nil {
			err = ue.Unwrap() // "connection refused", not "Put http://...: ..."
		}
		return nil, &SendError{Host: req.URL.Host, Err: err}
	}
	if resp.StatusCode < 300 {
		return resp, nil
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return nil, parseError(resp.StatusCode, body)
}

// parseError reads S3's <Error> and the query protocol's
// <ErrorResponse><Error> bodies.
func parseError(status int, body []byte) *ResponseError {
	e := &ResponseError{Status: status}
	var doc struct {
		Code    string
		Message string
		Error   struct {
			Code    string
			Message string
		}
	}
	if len(bytes.TrimSpace(body)) > 0 && xml.Unmarshal(body, &doc) == nil {
		e.Code, e.Message = doc.Code, doc.Message
		if e.Code == "" {
			e.Code, e.Message = doc.Error.Code, doc.Error.Message
		}
	}
	return e
}

// IsStatus reports whether err is a *ResponseError with that status.
func IsStatus(err error, status int) bool {
	var re *ResponseError
	return errors.As(err, &re) && re.Status == status
}

// IsCode reports whether err is a *ResponseError with that code.
func IsCode(err error, code string) bool {
	var re *ResponseError
	return errors.As(err, &re) && strings.EqualFold(re.Code, code)
}
