STORAGE_SRCS := storage/store.c storage/registry.c storage/upload.c \
	storage/schedule.c storage/commit.c storage/hash.c storage/write.c \
	storage/session.c storage/core.c storage/chunk.c storage/fs.c \
	storage/blob.c storage/sweep.c
STORAGE_ALLOW := common storage
