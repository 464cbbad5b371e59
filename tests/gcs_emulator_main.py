"""Runs gcp-storage-emulator with one fix that makes it behave like GCS for our object names.

The emulator (2026.7.19) puts object names into ``mediaLink`` without percent-encoding them; real GCS
encodes them. Our partition paths contain '%' (``label=%2Fm%2F09x0r``, pyarrow's hive encoding), so
downloads through the unencoded link would miss. Production code is untouched: this fixes the stand-in.
"""
import sys
import urllib.parse

from gcp_storage_emulator.__main__ import main
from gcp_storage_emulator.handlers import objects

_original = objects._make_object_resource


def _make_object_resource(base_url, bucket_name, object_name, *args, **kwargs):
    obj = _original(base_url, bucket_name, object_name, *args, **kwargs)
    quoted = urllib.parse.quote(object_name, safe='')
    obj['mediaLink'] = obj['mediaLink'].replace(f'/o/{object_name}?', f'/o/{quoted}?', 1)
    obj['selfLink'] = f'/storage/v1/b/{bucket_name}/o/{quoted}'
    return obj


objects._make_object_resource = _make_object_resource

if __name__ == '__main__':
    sys.exit(main())
