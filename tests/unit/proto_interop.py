#!/usr/bin/python3
"""proto_interop: cairn's nanopb codec against a real protobuf implementation.

Run with Debian's interpreter (it has python3-etcd3 and protobuf):

    /usr/bin/python3 tests/unit/proto_interop.py [--helper PATH] [-v]

1. Contract: every message, field (number, type, label, message type) and
   service method in python-etcd3's generated etcd classes (etcd3.etcdrpc)
   exists identically in net/proto/*.proto.
2. Python -> C: messages built with etcd3's classes are decoded by the C
   helper (tests/unit/proto_interop_helper.c); both sides print canonical
   "path=value" lines, which must be equal.
3. Python -> C -> Python: the helper decodes and re-encodes; Python parses
   the result and it must equal the original.
4. C -> Python: the helper encodes fixed messages with pbutil
   (pbu_set_kvs with 70000 kvs, events, repeated bytes, nested txn
   responses, a 1.5 MiB value, pbu_wrap_internal); Python parses and checks
   them field by field (InternalRaftRequest with classes built from
   net/proto/raft_internal.proto, which etcd3 does not ship).

Without --helper the helper is built in a temporary directory from the
source tree (protoc + nanopb + gen-callbacks.sh + gcc). Exit status 0 when
everything matches; failures are listed.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile

from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf import message_factory

from etcd3.etcdrpc import auth_pb2, kv_pb2, rpc_pb2

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
PROTO_DIR = os.path.join(TOP, 'net', 'proto')
PROTOS = ['kv', 'auth', 'rpc', 'etcdserver', 'raft_internal', 'lease']
VERBOSE = False
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print('FAIL:', what)
    elif VERBOSE:
        print('ok:', what)


# ---- building ----------------------------------------------------------------

def run(cmd, **kw):
    return subprocess.run(cmd, check=True, timeout=300, **kw)


def build_helper(tmp):
    gen = os.path.join(tmp, 'net', 'proto')
    os.makedirs(gen)
    run(['protoc', '--plugin=protoc-gen-nanopb=' +
         shutil.which('protoc-gen-nanopb'), '--nanopb_opt=-q',
         '--nanopb_opt=-f' + os.path.join(PROTO_DIR, 'cairn.options'),
         '--nanopb_out=' + gen, '-I' + PROTO_DIR] +
        [os.path.join(PROTO_DIR, p + '.proto') for p in PROTOS])
    run(['sh', os.path.join(PROTO_DIR, 'gen-callbacks.sh'),
         os.path.join(gen, 'pbslice_list.h'),
         os.path.join(PROTO_DIR, 'cairn.options')] +
        [os.path.join(gen, p + '.pb.h') for p in PROTOS])
    helper = os.path.join(tmp, 'proto_interop_helper')
    run(['gcc', '-std=gnu11', '-Wall', '-Wextra', '-Werror', '-O1', '-g',
         '-D_GNU_SOURCE', '-DPB_ENABLE_MALLOC=1', '-I' + TOP, '-I' + tmp,
         '-o', helper,
         os.path.join(TOP, 'tests', 'unit', 'proto_interop_helper.c'),
         os.path.join(PROTO_DIR, 'pbslice.c'),
         os.path.join(PROTO_DIR, 'pbutil.c'),
         os.path.join(TOP, 'core', 'errors.c')] +
        [os.path.join(gen, p + '.pb.c') for p in PROTOS] +
        ['-lprotobuf-nanopb'])
    return helper


def our_descriptors(tmp):
    out = os.path.join(tmp, 'cairn.desc')
    run(['protoc', '-I' + PROTO_DIR, '--include_imports',
         '--descriptor_set_out=' + out] +
        [os.path.join(PROTO_DIR, p + '.proto') for p in PROTOS])
    fds = descriptor_pb2.FileDescriptorSet()
    with open(out, 'rb') as f:
        fds.ParseFromString(f.read())
    return fds


# ---- 1. contract ---------------------------------------------------------------

# string and bytes are the same on the wire; etcd 3.4 turned some strings
# of older releases (which etcd3.etcdrpc follows) into bytes.
WIRE_SAME = {frozenset((descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
                        descriptor_pb2.FieldDescriptorProto.TYPE_BYTES))}


def same_field(theirs, ours):
    """theirs: a Python FieldDescriptor; ours: a FieldDescriptorProto."""
    if ours.name != theirs.name or ours.label != theirs.label:
        return False
    if ours.type != theirs.type:
        if frozenset((ours.type, theirs.type)) not in WIRE_SAME:
            return False
        print('note: %s is %s here, %s in etcd3.etcdrpc (same wire format)'
              % (theirs.full_name,
                 descriptor_pb2.FieldDescriptorProto.Type.Name(ours.type),
                 descriptor_pb2.FieldDescriptorProto.Type.Name(theirs.type)))
    sub = theirs.message_type or theirs.enum_type
    return sub is None or ours.type_name.lstrip('.') == sub.full_name


def check_contract(fds):
    ours = {}
    services = {}
    for fd in fds.file:
        def walk(prefix, msgs):
            for m in msgs:
                name = prefix + m.name
                ours[name] = m
                walk(name + '.', m.nested_type)
        walk(fd.package + '.', fd.message_type)
        for s in fd.service:
            services[fd.package + '.' + s.name] = s
    nfields = nmsgs = nmethods = 0
    for mod in (rpc_pb2, kv_pb2, auth_pb2):
        def walk_theirs(descs):
            nonlocal nfields, nmsgs
            for d in descs:
                mine = ours.get(d.full_name)
                check(mine is not None, 'message %s exists' % d.full_name)
                if mine is None:
                    continue
                nmsgs += 1
                by_num = {f.number: f for f in mine.field}
                for f in d.fields:
                    g = by_num.get(f.number)
                    check(g is not None and same_field(f, g),
                          'field %s.%s = %d matches' %
                          (d.full_name, f.name, f.number))
                    nfields += 1
                walk_theirs(d.nested_types)
        walk_theirs(mod.DESCRIPTOR.message_types_by_name.values())
    for s in rpc_pb2.DESCRIPTOR.services_by_name.values():
        mine = services.get(s.full_name)
        check(mine is not None, 'service %s exists' % s.full_name)
        if mine is None:
            continue
        by_name = {m.name: m for m in mine.method}
        for m in s.methods:
            g = by_name.get(m.name)
            ok = (g is not None and
                  g.input_type.lstrip('.') == m.input_type.full_name and
                  g.output_type.lstrip('.') == m.output_type.full_name)
            check(ok, 'method %s.%s matches' % (s.full_name, m.name))
            nmethods += 1
    print('contract: %d messages, %d fields, %d methods of etcd3.etcdrpc '
          'checked' % (nmsgs, nfields, nmethods))


# ---- 2./3. Python -> C ---------------------------------------------------------

def canon(msg, prefix=''):
    lines = []
    for fd, val in msg.ListFields():
        path = prefix + str(fd.number)
        if fd.label == fd.LABEL_REPEATED:
            for i, v in enumerate(val):
                lines += canon_value(fd, v, '%s[%d]' % (path, i))
        else:
            lines += canon_value(fd, val, path)
    return lines


def canon_value(fd, v, path):
    if fd.type == fd.TYPE_MESSAGE:
        return [path + '={}'] + canon(v, path + '.')
    if fd.type == fd.TYPE_BYTES:
        return [path + '=' + v.hex()]
    if fd.type == fd.TYPE_STRING:
        return [path + '=' + v.encode().hex()]
    return ['%s=%d' % (path, int(v))]


def helper_run(helper, args, data=b''):
    p = subprocess.run([helper] + args, input=data, capture_output=True,
                       timeout=120)
    return p.returncode, p.stdout, p.stderr


def kv(key, value=b'', c=0, m=0, ver=0, lease=0):
    return kv_pb2.KeyValue(key=key, value=value, create_revision=c,
                           mod_revision=m, version=ver, lease=lease)


def python_messages():
    big = bytes((i * 131 + 7) & 0xff for i in range(1536 * 1024))
    hdr = rpc_pb2.ResponseHeader(cluster_id=14841639068965178418,
                                 member_id=10276657743932975437,
                                 revision=1 << 40, raft_term=3)
    nested = rpc_pb2.TxnRequest(
        compare=[rpc_pb2.Compare(result=rpc_pb2.Compare.LESS,
                                 target=rpc_pb2.Compare.MOD, key=b'k4',
                                 mod_revision=9)],
        success=[rpc_pb2.RequestOp(request_delete_range=rpc_pb2.
                                   DeleteRangeRequest(key=b'k4',
                                                      prev_kv=True))])
    txn = rpc_pb2.TxnRequest(
        compare=[
            rpc_pb2.Compare(result=rpc_pb2.Compare.EQUAL,
                            target=rpc_pb2.Compare.VALUE, key=b'k1',
                            value=b'v1'),
            rpc_pb2.Compare(result=rpc_pb2.Compare.GREATER,
                            target=rpc_pb2.Compare.VERSION, key=b'k2',
                            range_end=b'k3', version=3),
            rpc_pb2.Compare(result=rpc_pb2.Compare.NOT_EQUAL,
                            target=rpc_pb2.Compare.VALUE, key=b'k0',
                            value=b''),
            rpc_pb2.Compare(target=rpc_pb2.Compare.LEASE, key=b'k9',
                            lease=0)],
        success=[
            rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b'k1',
                                                             value=b'v2')),
            rpc_pb2.RequestOp(request_range=rpc_pb2.RangeRequest(
                key=b'k', range_end=b'l', limit=5)),
            rpc_pb2.RequestOp(request_txn=nested)],
        failure=[rpc_pb2.RequestOp(request_delete_range=rpc_pb2.
                                   DeleteRangeRequest(key=b'k5'))])
    msgs = [
        ('etcdserverpb_PutRequest', rpc_pb2.PutRequest(
            key=b'/registry/big', value=big, lease=7587862072474545221,
            prev_kv=True, ignore_lease=True)),
        ('etcdserverpb_PutRequest', rpc_pb2.PutRequest(key=b'\x00\xff')),
        ('etcdserverpb_RangeRequest', rpc_pb2.RangeRequest(
            key=b'a', range_end=b'\x00', limit=10, revision=-1,
            sort_order=rpc_pb2.RangeRequest.DESCEND,
            sort_target=rpc_pb2.RangeRequest.MOD, serializable=True,
            keys_only=True, count_only=True, min_mod_revision=1,
            max_mod_revision=2, min_create_revision=3,
            max_create_revision=1 << 62)),
        ('etcdserverpb_DeleteRangeRequest', rpc_pb2.DeleteRangeRequest(
            key=b'a', range_end=b'b', prev_kv=True)),
        ('etcdserverpb_TxnRequest', txn),
        ('etcdserverpb_Compare', rpc_pb2.Compare(key=b'x', value=b'')),
        ('etcdserverpb_CompactionRequest', rpc_pb2.CompactionRequest(
            revision=12345, physical=True)),
        ('etcdserverpb_WatchRequest', rpc_pb2.WatchRequest(
            create_request=rpc_pb2.WatchCreateRequest(
                key=b'foo', range_end=b'fop', start_revision=17,
                progress_notify=True,
                filters=[rpc_pb2.WatchCreateRequest.NODELETE,
                         rpc_pb2.WatchCreateRequest.NOPUT],
                prev_kv=True))),
        ('etcdserverpb_WatchRequest', rpc_pb2.WatchRequest(
            cancel_request=rpc_pb2.WatchCancelRequest(watch_id=5))),
        ('etcdserverpb_LeaseGrantRequest', rpc_pb2.LeaseGrantRequest(
            TTL=60, ID=-2)),
        ('etcdserverpb_AuthUserAddRequest', rpc_pb2.AuthUserAddRequest(
            name='root', password='p\u00e4ss')),
        ('etcdserverpb_AuthRoleGrantPermissionRequest',
         rpc_pb2.AuthRoleGrantPermissionRequest(
             name='r', perm=auth_pb2.Permission(
                 permType=auth_pb2.Permission.READWRITE, key=b'/a',
                 range_end=b'/b'))),
        ('etcdserverpb_MemberAddRequest', rpc_pb2.MemberAddRequest(
            peerURLs=['http://10.0.0.1:2380', 'http://[::1]:2380'])),
        ('etcdserverpb_AlarmRequest', rpc_pb2.AlarmRequest(
            action=rpc_pb2.AlarmRequest.ACTIVATE,
            memberID=10276657743932975437, alarm=rpc_pb2.NOSPACE)),
        ('etcdserverpb_RangeResponse', rpc_pb2.RangeResponse(
            header=hdr, kvs=[kv(b'a', b'1', 2, 3, 1, 0),
                             kv(b'b', b'', 4, 5, 2, 99),
                             kv(b'c', big[:70000], 6, 6, 1)],
            more=True, count=3)),
        ('etcdserverpb_PutResponse', rpc_pb2.PutResponse(
            header=hdr, prev_kv=kv(b'a', b'old', 1, 2, 3))),
        ('etcdserverpb_DeleteRangeResponse', rpc_pb2.DeleteRangeResponse(
            header=hdr, deleted=2, prev_kvs=[kv(b'a'), kv(b'b', b'x')])),
        ('etcdserverpb_TxnResponse', rpc_pb2.TxnResponse(
            header=hdr, succeeded=True, responses=[
                rpc_pb2.ResponseOp(response_put=rpc_pb2.PutResponse(
                    header=hdr)),
                rpc_pb2.ResponseOp(response_range=rpc_pb2.RangeResponse(
                    count=7)),
                rpc_pb2.ResponseOp(response_txn=rpc_pb2.TxnResponse(
                    succeeded=False))])),
        ('etcdserverpb_WatchResponse', rpc_pb2.WatchResponse(
            header=hdr, watch_id=3, created=True, canceled=True,
            compact_revision=4, cancel_reason='why',
            events=[kv_pb2.Event(type=kv_pb2.Event.PUT,
                                 kv=kv(b'k', b'v', 1, 2, 1),
                                 prev_kv=kv(b'k', b'u', 1, 1, 1)),
                    kv_pb2.Event(type=kv_pb2.Event.DELETE,
                                 kv=kv(b'k', m=3))])),
        ('etcdserverpb_LeaseTimeToLiveResponse',
         rpc_pb2.LeaseTimeToLiveResponse(header=hdr, ID=5, TTL=-1,
                                         grantedTTL=60,
                                         keys=[b'a', b'', b'c'])),
        ('etcdserverpb_MemberListResponse', rpc_pb2.MemberListResponse(
            header=hdr, members=[
                rpc_pb2.Member(ID=10276657743932975437, name='infra1',
                               peerURLs=['http://127.0.0.1:2380'],
                               clientURLs=['http://127.0.0.1:2379',
                                           'http://10.0.0.1:2379']),
                rpc_pb2.Member(ID=2)])),
        ('etcdserverpb_StatusResponse', rpc_pb2.StatusResponse(
            header=hdr, version='3.4.23', dbSize=1 << 33, leader=7,
            raftIndex=100, raftTerm=4)),
        ('etcdserverpb_AuthRoleGetResponse', rpc_pb2.AuthRoleGetResponse(
            header=hdr, perm=[auth_pb2.Permission(key=b'a'),
                              auth_pb2.Permission(
                                  permType=auth_pb2.Permission.WRITE,
                                  key=b'b', range_end=b'c')])),
        ('mvccpb_KeyValue', kv(b'k', b'v', 1, 2, 3, -4)),
        ('mvccpb_Event', kv_pb2.Event(type=kv_pb2.Event.DELETE,
                                      kv=kv(b'k'))),
    ]
    if 'LeaseLeasesResponse' in rpc_pb2.DESCRIPTOR.message_types_by_name:
        msgs.append(('etcdserverpb_LeaseLeasesResponse',
                     rpc_pb2.LeaseLeasesResponse(leases=[
                         rpc_pb2.LeaseStatus(ID=1),
                         rpc_pb2.LeaseStatus(ID=-5)])))
    return msgs


# Messages with a pb_callback_t field somewhere: the helper cannot re-encode
# what it only streamed through a decode callback.
NO_ROUNDTRIP = {'etcdserverpb_RangeResponse', 'etcdserverpb_DeleteRangeResponse',
                'etcdserverpb_WatchResponse',
                'etcdserverpb_LeaseTimeToLiveResponse',
                'etcdserverpb_LeaseLeasesResponse'}


def check_python_to_c(helper):
    n = 0
    for name, msg in python_messages():
        wire = msg.SerializeToString()
        rc, out, err = helper_run(helper, ['decode', name], wire)
        check(rc == 0, '%s decodes (%s)' % (name, err.decode().strip()))
        got = sorted(out.decode().splitlines())
        want = sorted(canon(msg))
        if got != want:
            extra = sorted(set(got) - set(want))[:5]
            missing = sorted(set(want) - set(got))[:5]
            check(False, '%s: C sees what Python wrote (C only: %s; '
                  'Python only: %s)' % (name, extra, missing))
        else:
            check(True, '%s: C sees what Python wrote (%d lines)' %
                  (name, len(want)))
        n += 1
        if name in NO_ROUNDTRIP:
            continue
        rc, out, err = helper_run(helper, ['roundtrip', name], wire)
        back = type(msg)()
        ok = rc == 0
        if ok:
            back.ParseFromString(out)
            ok = back == msg
        check(ok, '%s: Python -> C -> Python is identity' % name)
    # Malformed input is refused, not crashed on.
    for bad in (b'\x0a\x05ab', b'\x08\x01', b'\x12\xff\xff\xff\xff\x0f',
                b'\x0b\x00'):
        rc, out, err = helper_run(helper, ['decode',
                                           'etcdserverpb_PutRequest'], bad)
        check(rc == 1, 'malformed %r is rejected (rc %d)' % (bad, rc))
    print('python -> C: %d messages checked' % n)


# ---- 4. C -> Python ------------------------------------------------------------

def c_encode(helper, case, cls):
    rc, out, err = helper_run(helper, ['encode', case])
    check(rc == 0, 'helper encodes %s (%s)' % (case, err.decode().strip()))
    msg = cls()
    msg.ParseFromString(out)
    return msg


def check_c_to_python(helper, fds):
    r = c_encode(helper, 'rangeresp', rpc_pb2.RangeResponse)
    check(len(r.kvs) == 70000, 'RangeResponse has 70000 kvs (%d)' %
          len(r.kvs))
    check(r.count == 70000 and r.more, 'RangeResponse count/more')
    check(r.header.cluster_id == 14841639068965178418 and
          r.header.member_id == 10276657743932975437 and
          r.header.revision == 70100 and r.header.raft_term == 2,
          'RangeResponse header')
    bad = [i for i, k in enumerate(r.kvs) if
           k.key != b'key-%07d' % i or
           k.value != (b'value' if i % 3 else b'') or
           k.create_revision != i + 1 or k.mod_revision != i + 100 or
           k.version != 1 or k.lease != (0 if i % 2 else 77)]
    check(not bad, 'all 70000 kvs exact (first bad: %s)' % bad[:3])

    t = c_encode(helper, 'txnresp', rpc_pb2.TxnResponse)
    check(t.succeeded and t.header.revision == 42 and
          len(t.responses) == 4, 'TxnResponse top level')
    rr = t.responses[0].response_range
    check(t.responses[0].WhichOneof('response') == 'response_range' and
          rr.count == 3 and [k.key for k in rr.kvs] ==
          [b'key-0000000', b'key-0000001', b'key-0000002'],
          'TxnResponse range kvs through a oneof')
    check(t.responses[1].response_put.prev_kv.key == b'old' and
          t.responses[1].response_put.prev_kv.mod_revision == 7,
          'TxnResponse put prev_kv')
    dr = t.responses[2].response_delete_range
    check(dr.deleted == 2 and [k.key for k in dr.prev_kvs] ==
          [b'key-0000001', b'key-0000002'], 'TxnResponse delete prev_kvs')
    inner = t.responses[3].response_txn
    check(len(inner.responses) == 1 and
          [k.key for k in inner.responses[0].response_range.kvs] ==
          [b'key-0000002'], 'TxnResponse nested txn')

    w = c_encode(helper, 'watchresp', rpc_pb2.WatchResponse)
    e = w.events
    check(w.watch_id == 3 and w.created and w.compact_revision == 1 and
          w.cancel_reason == 'because' and w.header.revision == 6,
          'WatchResponse fields')
    if 'fragment' in rpc_pb2.WatchResponse.DESCRIPTOR.fields_by_name:
        check(w.fragment, 'WatchResponse fragment')
    check(len(e) == 2 and e[0].type == kv_pb2.Event.PUT and
          e[0].kv.value == b'new' and e[0].kv.lease == 99 and
          e[0].kv.mod_revision == 5 and e[0].HasField('prev_kv') and
          e[0].prev_kv.value == b'old' and e[1].type == kv_pb2.Event.DELETE
          and not e[1].HasField('prev_kv') and e[1].kv.mod_revision == 6,
          'WatchResponse events')

    lt = c_encode(helper, 'leasettl', rpc_pb2.LeaseTimeToLiveResponse)
    check(list(lt.keys) == [b'foo', b'', b'bar'] and lt.TTL == -1 and
          lt.ID == 7587862072474545221 and lt.grantedTTL == 60,
          'LeaseTimeToLiveResponse keys')

    if 'LeaseLeasesResponse' in rpc_pb2.DESCRIPTOR.message_types_by_name:
        ll = c_encode(helper, 'leases', rpc_pb2.LeaseLeasesResponse)
        check([x.ID for x in ll.leases] == [1, -5, 7587862072474545221],
              'LeaseLeasesResponse leases')

    p = c_encode(helper, 'put', rpc_pb2.PutRequest)
    big = bytes((i * 131 + 7) & 0xff for i in range(1536 * 1024))
    check(p.key == b'big' and p.value == big and p.lease == 5 and
          p.prev_kv, 'PutRequest with a 1.5 MiB value')

    # InternalRaftRequest: classes from our own .proto in a private pool.
    pool = descriptor_pool.DescriptorPool()
    for fd in fds.file:
        pool.Add(fd)
    cls = message_factory.MessageFactory(pool).GetPrototype(
        pool.FindMessageTypeByName('etcdserverpb.InternalRaftRequest'))
    irr = c_encode(helper, 'irr', cls)
    check(irr.header.ID == 0x1234567890abcdef and irr.HasField('put') and
          irr.put.key == b'foo' and irr.put.value == b'bar' and
          irr.put.lease == 9 and not irr.HasField('txn'),
          'InternalRaftRequest from pbu_wrap_internal')
    print('C -> python: checked')


def main():
    global VERBOSE
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--helper', help='prebuilt proto_interop_helper')
    ap.add_argument('-v', action='store_true', help='list every check')
    args = ap.parse_args()
    VERBOSE = args.v
    tmp = tempfile.mkdtemp(prefix='proto_interop.')
    try:
        helper = args.helper or build_helper(tmp)
        fds = our_descriptors(tmp)
        check_contract(fds)
        check_python_to_c(helper)
        check_c_to_python(helper, fds)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if failures:
        print('%d FAILED' % len(failures))
        return 1
    print('all passed')
    return 0


if __name__ == '__main__':
    sys.exit(main())
