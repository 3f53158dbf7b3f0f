package gateway

import "encoding/binary"

// A frameStream follows one direction of a websocket's bytes (RFC 6455)
// as they pass through the proxy, without changing them, and hands each
// complete data message to onMessage. It keeps at most keep bytes of a
// message's payload; a longer or compressed message is handed over cut
// short and marked opaque, so that a huge output never sits in memory.
// Control frames (ping, pong, close) are skipped. After a framing error it
// stops looking: the bytes still pass, only unseen.
type frameStream struct {
	keep      int // payload bytes of one message kept; 0 keeps none
	onMessage func(opcode byte, payload []byte, opaque bool)

	hdr     [14]byte
	hdrLen  int    // header bytes read so far
	hdrNeed int    // header bytes this frame has (2 until the second byte is known)
	left    uint64 // payload bytes of the current frame still to come
	pos     uint64 // payload bytes of the current frame seen, for the mask
	masked  bool
	mask    [4]byte
	control bool // the current frame is ping, pong or close
	fin     bool

	inMessage bool // a data message is being assembled
	opcode    byte // its first frame's opcode: 1 text, 2 binary
	opaque    bool // cut short, or compressed
	buf       []byte
	broken    bool
}

// Opcodes of RFC 6455 data frames.
const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
)

// maxKeptBuffer is the capacity a stream's buffer may keep between
// messages; a larger one (after a large message) is dropped.
const maxKeptBuffer = 16 << 10

// feed follows p, the next bytes of the stream.
func (s *frameStream) feed(p []byte) {
	for len(p) > 0 && !s.broken {
		if s.hdrNeed == 0 {
			s.hdrNeed, s.hdrLen = 2, 0
		}
		if s.hdrLen < s.hdrNeed {
			n := copy(s.hdr[s.hdrLen:s.hdrNeed], p)
			s.hdrLen += n
			p = p[n:]
			if s.hdrLen == 2 {
				s.hdrNeed = 2 + extLen(s.hdr[1])
				if s.hdr[1]&0x80 != 0 {
					s.hdrNeed += 4
				}
			}
			if s.hdrLen < s.hdrNeed {
				continue
			}
			s.startFrame()
			if s.broken {
				return
			}
			if s.left == 0 {
				s.endFrame()
			}
			continue
		}
		n := uint64(len(p))
		if n > s.left {
			n = s.left
		}
		if !s.control && s.inMessage && !s.opaque {
			s.take(p[:n])
		}
		s.pos += n
		s.left -= n
		p = p[n:]
		if s.left == 0 {
			s.endFrame()
		}
	}
}

// extLen is how many extended length bytes follow a frame's second byte.
func extLen(b byte) int {
	switch b & 0x7f {
	case 126:
		return 2
	case 127:
		return 8
	}
	return 0
}

// startFrame reads the completed header of a frame.
func (s *frameStream) startFrame() {
	b0, b1 := s.hdr[0], s.hdr[1]
	s.fin = b0&0x80 != 0
	op := b0 & 0x0f
	s.masked = b1&0x80 != 0
	at := 2
	switch b1 & 0x7f {
	case 126:
		s.left = uint64(binary.BigEndian.Uint16(s.hdr[2:4]))
		at = 4
	case 127:
		s.left = binary.BigEndian.Uint64(s.hdr[2:10])
		at = 10
	default:
		s.left = uint64(b1 & 0x7f)
	}
	if s.masked {
		copy(s.mask[:], s.hdr[at:at+4])
	}
	s.pos = 0
	s.control = op&0x08 != 0
	switch {
	case s.control:
		if !s.fin || s.left > 125 {
			s.broken = true
		}
	case op == opContinuation:
		if !s.inMessage {
			s.broken = true
		}
	case op == opText || op == opBinary:
		if s.inMessage {
			s.broken = true
			return
		}
		s.inMessage, s.opcode, s.buf = true, op, s.buf[:0]
		s.opaque = b0&0x40 != 0 // RSV1: permessage-deflate
	default:
		s.broken = true
	}
}

// take keeps the unmasked bytes p of the current message's payload, up to
// keep bytes; beyond that the message is opaque.
func (s *frameStream) take(p []byte) {
	room := s.keep - len(s.buf)
	if len(p) > room {
		p = p[:max(room, 0)]
		s.opaque = true
	}
	start := len(s.buf)
	s.buf = append(s.buf, p...)
	if s.masked {
		for i := range s.buf[start:] {
			s.buf[start+i] ^= s.mask[(s.pos+uint64(i))%4]
		}
	}
}

// endFrame finishes the current frame, and with a final data frame its
// message.
func (s *frameStream) endFrame() {
	s.hdrNeed = 0
	if s.control || !s.fin {
		return
	}
	s.inMessage = false
	if s.onMessage != nil {
		s.onMessage(s.opcode, s.buf, s.opaque)
	}
	if cap(s.buf) > maxKeptBuffer {
		s.buf = nil
	}
}
