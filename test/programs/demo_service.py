"""A small inference-style service with planted leaks, for scripts/demo.

Each request tokenizes its prompt and builds a feature buffer (temporaries),
answers from a bounded LRU cache (it fills during warm-up, then only
replaces), and leaks twice: the features are appended to a "debug history"
that nobody trims, and a callback closure capturing an output buffer is
registered and never removed. The LEAK markers sit on the lines that
allocate what is kept, which is where a memory profiler points. Serves until SIGTERM; prints "ready" after
warm-up."""
import collections
import signal
import sys
import time

CACHE_SIZE = 64
history = []            # kept "for debugging", never trimmed
callbacks = []          # completion hooks, never removed
cache = collections.OrderedDict()
stop = False


def tokenize(prompt):
    return [hash(word) & 0xFFFF for word in prompt.split()]  # MARK:temporaries


def embed(tokens):
    features = bytearray(2048)  # LEAK:history (kept by handle's history.append)
    for i, t in enumerate(tokens):
        features[i % 2048] = t & 0xFF
    return features


def cached_answer(key):
    if key in cache:
        cache.move_to_end(key)
        return cache[key]
    answer = bytes(1024)  # MARK:cache (bounded: evicts as it fills)
    cache[key] = answer
    if len(cache) > CACHE_SIZE:
        cache.popitem(last=False)
    return answer


def handle(request_id):
    tokens = tokenize("request %d asks the model about item %d" % (request_id, request_id % 97))
    features = embed(tokens)
    history.append(features)
    answer = cached_answer(request_id % 200)
    out = bytearray(512)  # LEAK:callback (the closure below keeps it)
    callbacks.append(lambda: len(out))  # LEAK:closure
    return len(answer)


def on_term(signum, frame):
    global stop
    stop = True


def main():
    signal.signal(signal.SIGTERM, on_term)
    limit = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    request_id = 0
    while not stop and (not limit or request_id < limit):
        handle(request_id)
        if request_id == 300:
            print("ready after %d requests" % request_id, flush=True)
        request_id += 1
        time.sleep(0.0005)
    print("served %d requests" % request_id)


if __name__ == "__main__":
    main()
