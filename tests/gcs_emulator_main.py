"""Runs gcp-storage-emulator with two fixes that make it behave like GCS for what we do.

The emulator (2026.7.19) puts object names into ``mediaLink`` without percent-encoding them; real GCS
encodes them. Our partition paths contain '%' (``label=%2Fm%2F09x0r``, pyarrow's hive encoding), so
downloads through the unencoded link would miss. It also ignores ``ifGenerationMatch`` preconditions, which
the rebuild's compare-and-swap of latest.json relies on: uploads and deletes honour them here, as on GCS.
Production code is untouched: this fixes the stand-in.
"""
import sys
import urllib.parse
from http import HTTPStatus

from gcp_storage_emulator import server
from gcp_storage_emulator.__main__ import main
from gcp_storage_emulator.exceptions import NotFound
from gcp_storage_emulator.handlers import objects

_original = objects._make_object_resource


def _make_object_resource(base_url, bucket_name, object_name, *args, **kwargs):
    obj = _original(base_url, bucket_name, object_name, *args, **kwargs)
    quoted = urllib.parse.quote(object_name, safe='')
    obj['mediaLink'] = obj['mediaLink'].replace(f'/o/{object_name}?', f'/o/{quoted}?', 1)
    obj['selfLink'] = f'/storage/v1/b/{bucket_name}/o/{quoted}'
    return obj


objects._make_object_resource = _make_object_resource


# Preconditions: the emulator ignores ifGenerationMatch; GCS answers 412 when the object's live generation
# (0: none) differs. Checked and written under the emulator's single-threaded HTTP server, so atomically.
def _generation_of(storage, bucket_name, object_id) -> str:
    try:
        return str(storage.get_file_obj(bucket_name, object_id)['generation'])
    except NotFound:
        return '0'


def _with_preconditions(handler, name_of):
    def checked(request, response, storage, *args, **kwargs):
        want = request.query.get('ifGenerationMatch')
        if want:
            name = name_of(request)
            if name and _generation_of(storage, request.params['bucket_name'], name) != want[0]:
                response.status = HTTPStatus.PRECONDITION_FAILED
                response.json({'error': {'code': 412, 'message': 'At least one of the pre-conditions you '
                                         'specified did not hold.', 'errors': [{'reason': 'conditionNotMet'}]}})
                return None
        return handler(request, response, storage, *args, **kwargs)
    return checked


def _upload_name(request):
    data = request.data  # read the body in any case: the connection is kept alive
    if 'name' in request.query:
        return request.query['name'][0]
    if isinstance(data, dict):
        return (data.get('meta') or {}).get('name') or data.get('name')
    return None


_CHECKED = {objects.insert: _with_preconditions(objects.insert, _upload_name),
            objects.delete: _with_preconditions(objects.delete, lambda request: request.params['object_id'])}
for _, _handlers in server.HANDLERS:
    for _method, _handler in list(_handlers.items()):
        if _handler in _CHECKED:
            _handlers[_method] = _CHECKED[_handler]

if __name__ == '__main__':
    sys.exit(main())
