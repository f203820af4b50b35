package broker

import (
	"net"
	"sync"
)

// maxQueued bounds the bytes a coalescedConn holds unwritten: past it a
// Write waits, as a write to a full socket buffer would, so a broker that
// stops reading costs at most this much memory per connection.
const maxQueued = 1 << 20

// coalescedConn is a net.Conn whose Write queues its bytes and returns;
// one goroutine writes out everything queued, at once. amqp091-go writes
// each publish (method, header and body frames) with one Write while it
// holds the connection's write lock, so concurrent publishes on the
// channels of one connection each waited for that lock and then for
// their own system call. Queued, the publishes that arrive while the
// socket is busy go out in one write: fewer system calls here and fewer
// reads for RabbitMQ, and the lock is held for a copy. Bytes keep the
// order of the Writes.
type coalescedConn struct {
	net.Conn
	wake      chan struct{} // capacity 1: something was queued
	closed    chan struct{}
	closeOnce sync.Once

	mu     sync.Mutex
	room   sync.Cond // the queue shrank or err was set
	queued []byte
	spare  []byte // the buffer of the last write, for the next queue: two buffers of at most a batch each, no allocation per batch
	err    error  // the first write error or net.ErrClosed; every later Write returns it
}

// coalesce wraps conn; its writer goroutine ends with Close or the first
// write error (which closes conn, so that its reader fails too).
func coalesce(conn net.Conn) net.Conn {
	c := &coalescedConn{Conn: conn, wake: make(chan struct{}, 1), closed: make(chan struct{})}
	c.room.L = &c.mu
	go c.writeQueued()
	return c
}

// Write queues p. It returns an error only when an earlier write failed
// or the connection is closed: the error of a queued write comes with the
// next Write, and with the reader's error, as with a socket whose buffer
// took the bytes.
func (c *coalescedConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	for c.err == nil && len(c.queued) > 0 && len(c.queued)+len(p) > maxQueued {
		c.room.Wait()
	}
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return 0, err
	}
	c.queued = append(c.queued, p...)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default: // the writer is already due to look
	}
	return len(p), nil
}

// writeQueued writes out the queue each time something is queued.
func (c *coalescedConn) writeQueued() {
	for {
		select {
		case <-c.wake:
		case <-c.closed:
			return
		}
		c.mu.Lock()
		if len(c.queued) == 0 { // taken with the batch before
			c.mu.Unlock()
			continue
		}
		out := c.queued
		c.queued, c.spare = c.spare, nil
		c.mu.Unlock()
		_, err := c.Conn.Write(out)
		c.mu.Lock()
		c.spare = out[:0]
		if err != nil && c.err == nil {
			c.err = err
		}
		c.room.Broadcast()
		c.mu.Unlock()
		if err != nil {
			_ = c.Conn.Close()
			return
		}
	}
}

// Close stops the writer and closes the connection; bytes still queued
// are dropped, as a closed socket drops its buffer.
func (c *coalescedConn) Close() error {
	c.closeOnce.Do(func() { close(c.closed) })
	c.mu.Lock()
	if c.err == nil {
		c.err = net.ErrClosed
	}
	c.room.Broadcast()
	c.mu.Unlock()
	return c.Conn.Close()
}
