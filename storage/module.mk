STORAGE_SRCS := storage/blob.c storage/upload.c
STORAGE_ALLOW := common storage
