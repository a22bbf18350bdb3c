
b/device:GPU:09Stream #14(Compute)Â "Ğ°éÊèŸu"	8€€€€€€€€€*		correlation_id
¡	/host:CPU|¨æ‰Ñá¶˜u*pjrt_async_work_runner/8444490150489722664ŒÑ"€èØ­ÑZ˜Ôí	"-Z*pjrt_async_work_runner/8444490150489722664*--correlation_id