import empq


@empq.connector("hello")
def hello(job, progress):
    progress(50, "half way")
    return {"greeting": f"hello {job.payload.get('name', 'world')}"}
