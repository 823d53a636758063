package lambdarun

import (
	"net"
	"strconv"
	"time"
)

type netDialer struct{}

func (netDialer) ok(port int) bool {
	c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), 200*time.Millisecond)
	if err != nil {
		return false
	}
	_ = c.Close() // a probe: the dial answered the question and nothing was written
	return true
}
