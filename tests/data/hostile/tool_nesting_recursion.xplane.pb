
—	/host:CPU‰ş½•µÖâæi*pjrt_async_work_runner/7623902246999129869ŒÑ"~œùøçÉÇ¿Î¼¸¯"|¸Àä·9ÀüÓZ*pjrt_async_work_runner/7623902246999129869