package broker

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
)

func TestCoalescedConn(t *testing.T) {
	t.Parallel()
	t.Run("KeepsEachWriteWholeAndInOrder", func(t *testing.T) {
		t.Parallel()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		const writers, writes = 8, 300
		received := make(chan map[int][]int, 1)
		go func() {
			peer, err := ln.Accept()
			if err != nil {
				received <- nil
				return
			}
			defer peer.Close()
			got := map[int][]int{}
			lines := bufio.NewScanner(peer)
			lines.Buffer(nil, 1<<20)
			for n := 0; n < writers*writes && lines.Scan(); n++ {
				// A record is "writer seq padding": torn or merged ones
				// do not parse back to the padding their numbers imply.
				var w, seq int
				var pad string
				if _, err := fmt.Sscanf(lines.Text(), "%d %d %s", &w, &seq, &pad); err != nil || pad != padding(w, seq) {
					t.Errorf("record %q is torn", lines.Text())
					break
				}
				got[w] = append(got[w], seq)
			}
			received <- got
		}()
		raw, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		conn := coalesce(raw)
		defer conn.Close()
		var wg sync.WaitGroup
		for w := range writers {
			wg.Go(func() {
				for seq := range writes {
					if _, err := fmt.Fprintf(conn, "%d %d %s\n", w, seq, padding(w, seq)); err != nil {
						t.Errorf("write: %v", err)
						return
					}
				}
			})
		}
		wg.Wait()
		got := <-received
		for w := range writers {
			if len(got[w]) != writes {
				t.Fatalf("writer %d: %d records arrived, want %d", w, len(got[w]), writes)
			}
			for i, seq := range got[w] {
				if seq != i {
					t.Fatalf("writer %d: record %d arrived as number %d: out of order", w, seq, i)
				}
			}
		}
	})

	t.Run("WaitsWhileTheQueueIsFull", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			local, peer := net.Pipe() // unbuffered: nothing moves until the peer reads
			conn := coalesce(local)
			const chunk = maxQueued / 4
			const chunks = 6 // 1 in the writer's blocked write, 4 fill the queue, the 6th waits
			fill := func(i int) []byte { return bytes.Repeat([]byte{byte('a' + i)}, chunk) }
			if _, err := conn.Write(fill(0)); err != nil {
				t.Fatal(err)
			}
			synctest.Wait() // the writer took it and waits for the peer
			var done atomic.Int32
			done.Add(1)
			go func() {
				for i := 1; i < chunks; i++ {
					if _, err := conn.Write(fill(i)); err != nil {
						t.Errorf("write %d: %v", i, err)
						return
					}
					done.Add(1)
				}
			}()
			synctest.Wait()
			if got := done.Load(); got != chunks-1 {
				t.Errorf("%d writes returned while the peer read nothing, want %d: the queue holds at most %d bytes", got, chunks-1, maxQueued)
			}
			all, err := io.ReadAll(io.LimitReader(peer, chunks*chunk))
			if err != nil {
				t.Fatal(err)
			}
			for i := range chunks {
				if !bytes.Equal(all[i*chunk:(i+1)*chunk], fill(i)) {
					t.Errorf("chunk %d arrived changed or out of order", i)
				}
			}
			synctest.Wait()
			if got := done.Load(); got != chunks {
				t.Errorf("%d writes returned once the peer read, want %d", got, chunks)
			}
			_ = conn.Close()
			_ = peer.Close()
		})
	})

	t.Run("AFailedWriteFailsTheNextAndTheReader", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			local, peer := net.Pipe()
			conn := coalesce(local)
			_ = peer.Close()
			if _, err := conn.Write([]byte("queued before the failure is known")); err != nil {
				t.Fatalf("first write = %v, want nil: it only queues", err)
			}
			synctest.Wait() // the writer's write fails
			if _, err := conn.Write([]byte("next")); err == nil {
				t.Error("write after a failed one = nil, want its error")
			}
			if _, err := conn.Read(make([]byte, 1)); err == nil {
				t.Error("read after a failed write = nil, want an error: the connection is closed")
			}
			_ = conn.Close()
		})
	})

	t.Run("CloseFailsLaterWrites", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			local, peer := net.Pipe()
			conn := coalesce(local)
			if err := conn.Close(); err != nil {
				t.Fatal(err)
			}
			if _, err := conn.Write([]byte("late")); err == nil {
				t.Error("write after Close = nil, want an error")
			}
			_ = peer.Close()
		})
	})
}

// padding is a record's filler, derived from its numbers and of varying
// length, so that a torn record cannot pass for a whole one.
func padding(w, seq int) string {
	return string(bytes.Repeat([]byte{byte('a' + (w+seq)%26)}, 1+(w*31+seq*17)%400))
}
