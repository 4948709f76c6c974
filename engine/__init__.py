"""The fraud world engine. Importing it sets how Arrow's allocator reuses memory (engine.core.memory),
which must happen before pyarrow first allocates."""
from engine.core.memory import prefer_reuse_env

prefer_reuse_env()
