"""Type stubs of the native module (internal: use the package's public API)."""

from typing import Any

__version__: str

def main(argv: list[str]) -> int: ...
def run_command(argv: list[str], progress: object = None) -> tuple[int, str]: ...
def configure_s3(options: dict[str, Any] | None = None) -> None: ...

class SearchPages:
    def __iter__(self) -> SearchPages: ...
    def __next__(self) -> bytes: ...
    def stats(self) -> str: ...

class ArrowBatches:
    def __arrow_c_stream__(self, requested_schema: object | None = None) -> object: ...
    def num_rows(self) -> int: ...

class HeldLock:
    @staticmethod
    def acquire(
        catalog: str, owner: str, ttl_hours: float = ..., lock_key: str | None = None
    ) -> HeldLock: ...
    def release(self) -> None: ...
    def held(self) -> bool: ...
    @property
    def url(self) -> str: ...
    @property
    def payload(self) -> str: ...

class Warehouse:
    @staticmethod
    def open(catalog: str, warehouse: str | None = None) -> Warehouse: ...
    def info(self) -> str: ...
    def stats(self) -> str: ...
    def warehouse(self) -> str | None: ...
    def cells(self, geometry: str) -> list[str]: ...
    def files(
        self, geometry: str | None = None, start: str | None = None, end: str | None = None
    ) -> list[str]: ...
    def search(
        self,
        *,
        intersects: str | None = None,
        bbox: list[float] | None = None,
        datetime: str | None = None,
        ids: list[str] | None = None,
        collections: list[str] | None = None,
        filter: str | None = None,
        filter_lang: str | None = None,
        sortby: str | None = None,
        max_items: int | None = None,
        limit: int | None = None,
        fields: str | None = None,
        with_grid_partition: bool = False,
        page_size: int = 1000,
    ) -> SearchPages: ...
    def search_arrow(
        self,
        *,
        intersects: str | None = None,
        bbox: list[float] | None = None,
        datetime: str | None = None,
        ids: list[str] | None = None,
        collections: list[str] | None = None,
        filter: str | None = None,
        filter_lang: str | None = None,
        sortby: str | None = None,
        max_items: int | None = None,
        limit: int | None = None,
        batch_rows: int = 10000,
    ) -> ArrowBatches: ...
