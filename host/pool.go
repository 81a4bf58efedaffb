package host

import (
	"context"
	"sync/atomic"

	extism "github.com/extism/go-sdk"
)

// pool is a bounded set of instances of one compiled module. At most max
// instances exist; a call takes one (creating it if none is idle), and gives
// it back or, when the call broke it, drops it so the next call gets a fresh
// one.
type pool struct {
	compiled *extism.CompiledPlugin
	mount    mounter        // the granted folders of each instance
	slots    chan struct{}  // one token per instance allowed to be in use
	idle     chan *instance // instances waiting for a call
	live     atomic.Int32   // instances existing now
	closed   atomic.Bool
}

func newPool(c *extism.CompiledPlugin, mount mounter, max int) *pool {
	return &pool{
		compiled: c,
		mount:    mount,
		slots:    make(chan struct{}, max),
		idle:     make(chan *instance, max),
	}
}

// get returns an instance for one call, waiting while max are busy.
func (p *pool) get(ctx context.Context) (*instance, error) {
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case inst := <-p.idle:
		return inst, nil
	default:
	}
	if p.closed.Load() {
		<-p.slots
		return nil, errPoolClosed
	}
	inst, err := newInstance(context.Background(), p.compiled, p.mount)
	if err != nil {
		<-p.slots
		return nil, err
	}
	p.live.Add(1)
	return inst, nil
}

// put returns a sound instance to the pool.
func (p *pool) put(inst *instance) {
	if p.closed.Load() {
		p.drop(inst)
		return
	}
	p.idle <- inst // never blocks: at most max instances exist
	<-p.slots
}

// drop closes an instance that must not serve again.
func (p *pool) drop(inst *instance) {
	inst.close()
	p.live.Add(-1)
	<-p.slots
}

// add puts an instance created outside get (the one that answered the
// metadata call at load time) into the pool.
func (p *pool) add(inst *instance) {
	p.live.Add(1)
	p.slots <- struct{}{}
	p.put(inst)
}

// close closes the idle instances; the caller makes sure none is in use.
func (p *pool) close() {
	p.closed.Store(true)
	for {
		select {
		case inst := <-p.idle:
			inst.close()
			p.live.Add(-1)
		default:
			return
		}
	}
}
