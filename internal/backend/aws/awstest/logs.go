package awstest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"strings"
	"sync"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
)

// logShipper is the instance stand-in's awslogs driver: each line of the
// task's output becomes an event in moto's CloudWatch Logs, in the group
// and stream prefix the container's log configuration names, stream
// PREFIX/CONTAINER/TASK-ID.
type logShipper struct {
	cl            *cloudwatchlogs.Client
	group, stream string

	mu      sync.Mutex
	partial bytes.Buffer
	pending []cwtypes.InputLogEvent
	created bool
	stop    chan struct{}
	done    chan struct{}
}

func newLogShipper(m *AWS, c ecstypes.ContainerDefinition, user string) *logShipper {
	s := &logShipper{cl: cloudwatchlogs.NewFromConfig(m.Config()), stop: make(chan struct{}), done: make(chan struct{})}
	if lc := c.LogConfiguration; lc != nil && lc.LogDriver == ecstypes.LogDriverAwslogs {
		var id [16]byte
		rand.Read(id[:])
		s.group = lc.Options["awslogs-group"]
		s.stream = lc.Options["awslogs-stream-prefix"] + "/" + awssdk.ToString(c.Name) + "/" + hex.EncodeToString(id[:])
	}
	go s.run()
	return s
}

func (s *logShipper) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.partial.Write(p)
	for {
		line, err := s.partial.ReadString('\n')
		if err == io.EOF {
			s.partial.WriteString(line) // not a whole line yet
			return len(p), nil
		}
		s.pending = append(s.pending, cwtypes.InputLogEvent{
			Message: awssdk.String(strings.TrimSuffix(line, "\n")), Timestamp: awssdk.Int64(time.Now().UnixMilli()),
		})
	}
}

func (s *logShipper) run() {
	defer close(s.done)
	for {
		select {
		case <-s.stop:
			s.flush()
			return
		case <-time.After(200 * time.Millisecond):
			s.flush()
		}
	}
}

// flush sends what is pending; without a log group (no awslogs driver)
// the lines are dropped, as ECS would.
func (s *logShipper) flush() {
	s.mu.Lock()
	batch := s.pending
	s.pending = nil
	s.mu.Unlock()
	if len(batch) == 0 || s.group == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if !s.created {
		if _, err := s.cl.CreateLogStream(ctx, &cloudwatchlogs.CreateLogStreamInput{LogGroupName: &s.group, LogStreamName: &s.stream}); err != nil {
			return // the group is gone (site down): the lines go nowhere
		}
		s.created = true
	}
	s.cl.PutLogEvents(ctx, &cloudwatchlogs.PutLogEventsInput{LogGroupName: &s.group, LogStreamName: &s.stream, LogEvents: batch})
}

func (s *logShipper) close() {
	close(s.stop)
	<-s.done
}

// teeWriter writes to both; the first's error counts.
type teeWriter struct {
	a, b io.Writer
}

func (t teeWriter) Write(p []byte) (int, error) {
	t.b.Write(p)
	return t.a.Write(p)
}
